"""What a board BLE adapter looks for: a target's address, or a name or the SMP
service in advertising data. Shared by ``ble_mp`` and ``ble_cp``.
"""

# The SMP service UUID (smpdfu.ble.SMP_SERVICE_UUID) as advertising data carries it (little-endian).
SMP_SERVICE_LE = b"\x84\xaa`tR\x8a\x8b\x86\xd3L\xb7\x1d\x1d\xdcS\x8d"


def parse_address(target):
    """``"AA:BB:CC:DD:EE:FF"`` -> 6 bytes, most significant first; None when
    ``target`` is not an address (then it is a name)."""
    if not isinstance(target, str) or len(target) != 17:
        return None
    out = bytearray(6)
    for i in range(6):
        part = target[i * 3:i * 3 + 2]
        if i < 5 and target[i * 3 + 2] != ":":
            return None
        try:
            out[i] = int(part, 16)
        except ValueError:
            return None
    return bytes(out)


def adv_matches(adv, name):
    """Whether advertising data ``adv`` (bytes-like) names ``name`` (bytes) or,
    when ``name`` is None, lists the SMP service."""
    i = 0
    n = len(adv)
    while i + 1 < n:
        ln = adv[i]
        if ln == 0:
            break
        kind = adv[i + 1]
        a = i + 2
        b = i + 1 + ln
        if name is None:
            if kind in (6, 7):  # incomplete/complete list of 128-bit UUIDs
                for u in range(a, b - 15, 16):
                    if bytes(adv[u:u + 16]) == SMP_SERVICE_LE:
                        return True
        elif kind in (8, 9) and bytes(adv[a:b]) == name:  # shortened/complete local name
            return True
        i = b
    return False
