"""What MCUboot does at reset, over a :class:`~.flash.FlashFile`.

From MCUboot ``docs/design.md`` (swap types, image trailer, states I-IV) and
``bootutil_public.c`` (the swap-type tables in :func:`smpdfu.bootutil.swap_type`):

- swap type TEST or PERM: the image in slot 1 is validated (header, TLVs,
  SHA-256 TLV); an invalid one is erased and never booted. A valid one is
  swapped with slot 0. Afterwards slot 0's trailer says magic good,
  copy_done set, image_ok set only for PERM; slot 1's trailer is erased.
  TEST therefore becomes REVERT on the next boot unless the app confirms.
- swap type REVERT: swap back; slot 0 (the old image) is marked image_ok.
- NONE: boot slot 0 if it holds a valid image.

The swap moves whole pages; its time is estimated as 2 erases + 2 page
writes per page of the larger image (swap-using-move does about that), at
the flash's speed.
"""

from smpdfu import mcuboot, mcuboot_scan
from smpdfu.errors import BadImage
from smpdfu.bootutil import (
    SWAP_NAMES, SWAP_NONE, SWAP_PERM, SWAP_REVERT, SWAP_TEST, TRAILER_SIZE,
    swap_type, write_copy_done, write_image_ok, write_magic, write_swap_info,
)

from .flash import ERASE_MS, WRITE_US_PER_WORD


def image_extent(flash, slot):
    """Bytes the image in ``slot`` occupies (header..TLVs), or None when no image."""
    def read(off, mv):
        mv[:] = flash.slot_bytes(slot, off, len(mv))

    try:
        return mcuboot_scan.scan(read, flash.slot_size(slot)).total_size
    except BadImage:
        return None


def validate(flash, slot):
    """The slot's :class:`smpdfu.mcuboot.ImageInfo` when its image is valid, else None."""
    n = image_extent(flash, slot)
    if n is None:
        return None
    v = mcuboot.ImageVerifier(n)
    v.feed(flash.slot_bytes(slot, 0, n))
    try:
        return v.finish()
    except BadImage:
        return None


def _swap_ms(flash, n_bytes):
    pages = (n_bytes + flash.page_size - 1) // flash.page_size
    page_write_ms = flash.page_size / 4 * WRITE_US_PER_WORD / 1000.0
    return pages * 2 * (ERASE_MS + page_write_ms)


def _swap_slots(flash, n_bytes):
    size = flash.slot_size(0)
    body = size - TRAILER_SIZE
    a = flash.slot_bytes(0, 0, body)
    b = flash.slot_bytes(1, 0, body)
    flash.raw_write(0, 0, b)
    flash.raw_write(1, 0, a)
    flash.raw_erase(0, body, TRAILER_SIZE)
    flash.raw_erase(1, body, TRAILER_SIZE)
    flash.spend_ms(_swap_ms(flash, n_bytes))


def boot(flash):
    """Run MCUboot's decision at reset; returns a dict describing what happened.

    Keys: ``swap_type`` (name), ``action`` ("none", "swap", "revert",
    "erase-invalid", "no-image"), ``version`` (running version string or None).
    """
    st = swap_type(flash)
    action = "none"
    if st in (SWAP_TEST, SWAP_PERM):
        info = validate(flash, 1)
        if info is None:
            flash.erase(1, 0, flash.slot_size(1))
            action = "erase-invalid"
        else:
            n = max(info.total_size, image_extent(flash, 0) or 0)
            _swap_slots(flash, n)
            write_magic(flash, 0)
            write_copy_done(flash, 0)
            if st == SWAP_PERM:
                write_image_ok(flash, 0)
            write_swap_info(flash, 0, st)
            action = "swap"
    elif st == SWAP_REVERT:
        n = max(image_extent(flash, 0) or 0, image_extent(flash, 1) or 0)
        _swap_slots(flash, n)
        write_magic(flash, 0)
        write_copy_done(flash, 0)
        write_image_ok(flash, 0)
        write_swap_info(flash, 0, SWAP_REVERT)
        action = "revert"
    running = validate(flash, 0)
    if running is None:
        action = "no-image" if action == "none" else action
    flash.flush()
    return {"swap_type": SWAP_NAMES.get(st, "?"), "action": action,
            "version": running.version_str if running is not None else None,
            "bootable": running is not None}


_factory_cache = {}


def make_factory_image(version="1.0.0", size=48 * 1024, slot_size=None, seed=1):
    """Bytes of a real ``imgtool sign`` image (unsigned: SHA-256 TLV only) of ``size``
    deterministic pseudo-random payload bytes; cached (imgtool takes a while).

    Made by :func:`smpdfu_host.imgtool_image.image_bytes`."""
    key = (version, size, slot_size, seed)
    if key not in _factory_cache:
        from smpdfu_host.imgtool_image import SLOT_SIZE, image_bytes

        _factory_cache[key] = image_bytes(version, size, seed, slot_size or SLOT_SIZE,
                                          extra_args=["--align", "4"])
    return _factory_cache[key]


def install_factory(flash, image):
    """Program ``image`` (bytes) into slot 0 as a programmer would (no trailer)."""
    flash.raw_erase(0)
    flash.raw_write(0, 0, image)
    flash.flush()


__all__ = ["boot", "validate", "image_extent", "make_factory_image", "install_factory",
           "SWAP_NONE"]
