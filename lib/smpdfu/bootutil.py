"""MCUboot's image trailer in a slot: swap state, swap type, set pending / confirmed.

From MCUboot ``boot/bootutil/src/bootutil_public.c`` (trailer layout,
``boot_read_swap_state``, the swap-type tables of ``boot_swap_type_multi``,
``boot_set_pending`` / ``boot_set_confirmed``), over an *image store* (see
:mod:`smpdfu.server_image`). Used by the image group and by emulated
bootloaders; a board updating a neighbour never needs it.
"""

from .compat import const
from .errcodes import IMG_ERR_INVALID_IMAGE_HEADER_MAGIC, IMG_ERR_INVALID_IMAGE_VECTOR_TABLE

# MCUboot swap types (bootutil_public.h BOOT_SWAP_TYPE_*)
SWAP_NONE = const(1)
SWAP_TEST = const(2)
SWAP_PERM = const(3)
SWAP_REVERT = const(4)
SWAP_NAMES = {SWAP_NONE: "none", SWAP_TEST: "test", SWAP_PERM: "perm", SWAP_REVERT: "revert"}

MAGIC_GOOD = const(1)
MAGIC_BAD = const(2)
MAGIC_UNSET = const(3)
FLAG_SET = const(1)
FLAG_BAD = const(2)
FLAG_UNSET = const(3)

BOOT_MAGIC = b"\x77\xc2\x95\xf3\x60\xd2\xef\x7f\x35\x52\x50\x0f\x2c\xb6\x79\x80"
BOOT_MAX_ALIGN = const(8)
WRITE_ALIGN = const(4)  # nRF52840 NVMC word
TRAILER_SIZE = const(48)  # magic 16 + image_ok, copy_done, swap_info, swap_size (8 each)


def magic_off(size):
    return size - 16


def image_ok_off(size):
    return ((size - 16 - BOOT_MAX_ALIGN) // BOOT_MAX_ALIGN) * BOOT_MAX_ALIGN


def copy_done_off(size):
    return image_ok_off(size) - BOOT_MAX_ALIGN


def swap_info_off(size):
    return copy_done_off(size) - BOOT_MAX_ALIGN


def read_swap_state(store, slot):
    """``(magic, swap_type, copy_done, image_ok)`` of a slot's trailer (boot_read_swap_state)."""
    size = store.slot_size(slot)
    buf = bytearray(16)
    store.read(slot, magic_off(size), buf)
    if buf == b"\xff" * 16:
        magic = MAGIC_UNSET
    elif buf == BOOT_MAGIC:
        magic = MAGIC_GOOD
    else:
        magic = MAGIC_BAD
    one = bytearray(1)
    store.read(slot, swap_info_off(size), one)
    st = one[0] & 0x0F
    if one[0] == 0xFF or st > SWAP_REVERT:
        st = SWAP_NONE
    flags = []
    for off in (copy_done_off(size), image_ok_off(size)):
        store.read(slot, off, one)
        flags.append(FLAG_UNSET if one[0] == 0xFF else (FLAG_SET if one[0] == 1 else FLAG_BAD))
    return magic, st, flags[0], flags[1]


def swap_type(store):
    """MCUboot's swap type from both trailers (boot_swap_type_multi, tables in order)."""
    m0, _s0, cd0, ok0 = read_swap_state(store, 0)
    m1, _s1, _cd1, ok1 = read_swap_state(store, 1)
    if m1 == MAGIC_GOOD and ok1 == FLAG_UNSET:
        return SWAP_TEST
    if m1 == MAGIC_GOOD and ok1 == FLAG_SET:
        return SWAP_PERM
    if m0 == MAGIC_GOOD and m1 == MAGIC_UNSET and ok0 == FLAG_UNSET and cd0 == FLAG_SET:
        return SWAP_REVERT
    return SWAP_NONE


def _write_flag(store, slot, off, value=FLAG_SET):
    # boot_write_trailer: the flag padded with erased bytes to the write alignment.
    buf = bytearray(b"\xff" * WRITE_ALIGN)
    buf[0] = value
    store.write(slot, off, buf)


def write_magic(store, slot):
    store.write(slot, magic_off(store.slot_size(slot)), BOOT_MAGIC)


def write_image_ok(store, slot):
    _write_flag(store, slot, image_ok_off(store.slot_size(slot)))


def write_copy_done(store, slot):
    _write_flag(store, slot, copy_done_off(store.slot_size(slot)))


def write_swap_info(store, slot, swap, image_num=0):
    _write_flag(store, slot, swap_info_off(store.slot_size(slot)), (image_num << 4) | swap)


def set_pending(store, permanent):
    """boot_set_pending / boot_set_next for the secondary slot. Returns 0 or an IMG_MGMT_ERR code."""
    magic = read_swap_state(store, 1)[0]
    if magic == MAGIC_GOOD:
        return 0  # swap already scheduled
    if magic == MAGIC_BAD:
        # "The image slot is corrupt. There is no way to recover, so erase the slot."
        store.erase(1, 0, store.slot_size(1))
        return IMG_ERR_INVALID_IMAGE_HEADER_MAGIC
    write_magic(store, 1)
    if permanent:
        write_image_ok(store, 1)
    write_swap_info(store, 1, SWAP_PERM if permanent else SWAP_TEST)
    return 0


def set_confirmed(store):
    """boot_set_confirmed for the primary slot. Returns 0 or an IMG_MGMT_ERR code."""
    magic, _st, _cd, ok = read_swap_state(store, 0)
    if magic == MAGIC_UNSET:
        return 0  # no trailer: programmed image, already confirmed
    if magic == MAGIC_BAD:
        return IMG_ERR_INVALID_IMAGE_VECTOR_TABLE  # BOOT_EBADVECT
    if ok == FLAG_UNSET:
        write_image_ok(store, 0)
    return 0
