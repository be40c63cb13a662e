"""CRC32C (Castagnoli) for Secret Manager payload checksums; table-driven, independent of module_utils' copy."""

from __future__ import annotations

_TABLE = []
for _i in range(256):
    _c = _i
    for _bit in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
