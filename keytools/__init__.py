"""keytools: SSH key types, file formats and pykeygen. Pure library: no sockets, no asyncio.

Importing this package is cheap on purpose (no rich, keyring or pkcs11; cryptography
only when a key operation needs it), so ``pykeygen -l`` starts fast.
"""
