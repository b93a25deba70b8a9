"""SMP image management group (1) server, like Zephyr's img_mgmt, over MCUboot slots.

Commands: 0 state read/write, 1 upload, 5 erase, 6 slot info. Single image,
two slots, swap mode (slot 0 always runs). Sources: Zephyr
``grp/img_mgmt/src/img_mgmt.c`` (upload, erase, error translation),
``zephyr_img_mgmt.c`` (``img_mgmt_upload_inspect``), ``img_mgmt_state.c``
(flags, slot in use, next boot slot). The MCUboot trailer (swap type, set
pending / confirmed) is :mod:`smpdfu.bootutil`.

The flash is an *image store* object (anything with these methods), so the
same group runs over an emulator's flash file or a board's flash::

    page_size                         erase unit (bytes)
    slot_size(slot) -> int
    read(slot, off, buf)              fill buf (bytearray/memoryview)
    write(slot, off, data)            program bytes (NOR: may only clear bits)
    erase(slot, off, size)            erase whole pages covering the range
    is_erased(slot) -> bool           (optional) whole slot is 0xff

State (pending, confirmed) lives only in the slots' MCUboot trailers, as on a
real device; upload progress lives in RAM (:meth:`ImageGroup.reset_upload`).
"""

import struct

from .bootutil import SWAP_NONE, SWAP_PERM, SWAP_REVERT, TRAILER_SIZE, set_confirmed, set_pending, swap_type
from .compat import const, sha256
from .errcodes import (IMG_ERASE, IMG_ERR_CURRENT_VERSION_IS_NEWER, IMG_ERR_HASH_NOT_FOUND,
                       IMG_ERR_IMAGE_ALREADY_PENDING, IMG_ERR_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED,
                       IMG_ERR_INVALID_FLASH_ADDRESS, IMG_ERR_INVALID_HASH,
                       IMG_ERR_INVALID_IMAGE_DATA_OVERRUN, IMG_ERR_INVALID_IMAGE_HEADER,
                       IMG_ERR_INVALID_IMAGE_HEADER_MAGIC, IMG_ERR_INVALID_IMAGE_TOO_LARGE,
                       IMG_ERR_INVALID_LENGTH, IMG_ERR_INVALID_OFFSET,
                       IMG_ERR_INVALID_PAGE_OFFSET, IMG_ERR_INVALID_SLOT, IMG_ERR_INVALID_TLV,
                       IMG_ERR_NO_FREE_MEMORY, IMG_ERR_NO_FREE_SLOT, IMG_ERR_NO_IMAGE, IMG_ERR_NO_TLVS,
                       IMG_ERR_TLV_MULTIPLE_HASHES_FOUND,
                       IMG_ERR_VERSION_GET_FAILED, MGMT_ERR_EBADSTATE, MGMT_ERR_EINVAL, MGMT_ERR_ENOENT,
                       MGMT_ERR_ENOMEM, MGMT_ERR_EOK, MGMT_ERR_EUNKNOWN)
from .errors import BadImage
from .mcuboot import IMAGE_MAGIC, version_str
from .mcuboot_scan import (FAULT_HASH_SIZE, FAULT_HASHES, FAULT_HEADER, FAULT_NO_HASH, FAULT_TLV,
                           IMAGE_F_NON_BOOTABLE, scan)
from .proto import GROUP_IMAGE, IMG_SLOT_INFO, IMG_STATE, IMG_UPLOAD
from .server import GroupStatus, field

# img_mgmt_translate_error_code: what a v1 client sees instead.
_TRANSLATE = {
    IMG_ERR_NO_IMAGE: MGMT_ERR_ENOENT, IMG_ERR_NO_TLVS: MGMT_ERR_ENOENT,
    IMG_ERR_NO_FREE_SLOT: MGMT_ERR_EBADSTATE, IMG_ERR_CURRENT_VERSION_IS_NEWER: MGMT_ERR_EBADSTATE,
    IMG_ERR_IMAGE_ALREADY_PENDING: MGMT_ERR_EBADSTATE,
    IMG_ERR_NO_FREE_MEMORY: MGMT_ERR_ENOMEM,
    IMG_ERR_INVALID_SLOT: MGMT_ERR_EINVAL, IMG_ERR_INVALID_PAGE_OFFSET: MGMT_ERR_EINVAL, IMG_ERR_INVALID_OFFSET: MGMT_ERR_EINVAL,
    IMG_ERR_INVALID_LENGTH: MGMT_ERR_EINVAL, IMG_ERR_INVALID_IMAGE_HEADER: MGMT_ERR_EINVAL, IMG_ERR_INVALID_HASH: MGMT_ERR_EINVAL,
    IMG_ERR_INVALID_FLASH_ADDRESS: MGMT_ERR_EINVAL,
}

# next boot types (img_mgmt_state.c)
_NORMAL = const(0)
_TEST = const(1)
_REVERT = const(2)

_ACTIVE = const(0)  # swap mode: slot 0 is always the running slot


def read_info(store, slot):
    """``(version, hash, flags)`` of the image in ``slot`` (img_mgmt_read_info).

    Walks the header and TLVs with :func:`smpdfu.mcuboot_scan.scan` (the body is
    not read). Raises :class:`GroupStatus` with NO_IMAGE (erased header), the
    header magic error, NO_TLVS, INVALID_TLV, TLV_MULTIPLE_HASHES_FOUND or
    HASH_NOT_FOUND, like Zephyr (which skips a SHA256 TLV that is not 32 bytes).
    """
    if slot < 0 or slot > 1:
        raise GroupStatus(GROUP_IMAGE, IMG_ERR_INVALID_SLOT)
    magic = bytearray(4)
    store.read(slot, 0, magic)
    if magic == b"\xff\xff\xff\xff":
        raise GroupStatus(GROUP_IMAGE, IMG_ERR_NO_IMAGE)
    try:
        info = scan(lambda off, mv: store.read(slot, off, mv), store.slot_size(slot))
    except BadImage as e:
        raise GroupStatus(GROUP_IMAGE, _FAULT_ERR.get(e.fault, IMG_ERR_NO_TLVS))
    return info.version, info.hash, info.flags


_FAULT_ERR = {
    FAULT_HEADER: IMG_ERR_INVALID_IMAGE_HEADER_MAGIC, FAULT_TLV: IMG_ERR_INVALID_TLV,
    FAULT_HASHES: IMG_ERR_TLV_MULTIPLE_HASHES_FOUND, FAULT_HASH_SIZE: IMG_ERR_HASH_NOT_FOUND,
    FAULT_NO_HASH: IMG_ERR_HASH_NOT_FOUND,
}


def _vercmp(a, b):
    # img_mgmt_vercmp without CONFIG_MCUMGR_GRP_IMG_VERSION_CMP_USE_BUILD_NUMBER
    for i in range(3):
        if a[i] != b[i]:
            return -1 if a[i] < b[i] else 1
    return 0


class ImageGroup:
    """The image group over an image ``store``.

    ``progressive_erase``: CONFIG_IMG_ERASE_PROGRESSIVELY (erase each page just
    before writing into it) instead of erasing the image's pages on the first
    chunk. ``image_check``: CONFIG_IMG_ENABLE_IMAGE_CHECK (``match`` in the last
    upload response, and an upload whose ``sha`` already matches the slot ends
    at once). ``listener(kind, info_dict)`` receives events: "upload-start",
    "upload-chunk", "upload-done", "erase", "test", "confirm".
    """

    group_id = GROUP_IMAGE

    def __init__(self, store, progressive_erase=False, image_check=True, listener=None):
        self.store = store
        self.progressive_erase = progressive_erase
        self.image_check = image_check
        self.listener = listener
        self.legacy_rc = False
        self.handlers = {
            IMG_STATE: (self.state_read, self.state_write),
            IMG_UPLOAD: (None, self.upload),
            IMG_ERASE: (None, self.erase),
            IMG_SLOT_INFO: (self.slot_info, None),
        }
        self.reset_upload()

    def translate(self, rc):
        return _TRANSLATE.get(rc, MGMT_ERR_EUNKNOWN)

    def reset_upload(self):
        """Forget the upload in progress (img_mgmt_reset_upload; also what a reset does)."""
        self.area = -1
        self.off = 0
        self.size = 0
        self.data_sha = b""
        self._erased_to = 0

    def _event(self, kind, **info):
        if self.listener is not None:
            self.listener(kind, info)

    # --- state --------------------------------------------------------------

    def next_boot(self):
        """``(slot, type)`` that boots next (img_mgmt_get_next_boot_slot)."""
        st = swap_type(self.store)
        if st == SWAP_NONE:
            return _ACTIVE, _NORMAL
        if st == SWAP_PERM:
            return 1, _NORMAL
        if st == SWAP_REVERT:
            return 1, _REVERT
        return 1, _TEST

    def slot_in_use(self, slot):
        nbs, t = self.next_boot()
        if slot == nbs and t == _REVERT:
            return True
        if (slot == nbs and t == _TEST) or (nbs != _ACTIVE and t == _NORMAL):
            return True
        return slot == _ACTIVE

    def running_version(self):
        """The version string of the image in slot 0, or None."""
        try:
            return version_str(read_info(self.store, _ACTIVE)[0])
        except GroupStatus:
            return None

    def state_list(self):
        """The ``images`` list of a state read (dicts), slots with no valid image left out."""
        nbs, t = self.next_boot()
        flags = [{"active": True, "confirmed": t != _REVERT}, {}]
        if nbs != _ACTIVE:
            if t == _NORMAL:
                flags[1] = {"pending": True, "permanent": True}
            elif t == _REVERT:
                flags[1] = {"confirmed": True}
            else:
                flags[1] = {"pending": True}
        out = []
        for slot in (0, 1):
            try:
                ver, h, hflags = read_info(self.store, slot)
            except GroupStatus:
                continue
            f = flags[slot]
            out.append({
                "slot": slot, "version": version_str(ver), "hash": h,
                "bootable": not hflags & IMAGE_F_NON_BOOTABLE,
                "pending": f.get("pending", False), "confirmed": f.get("confirmed", False),
                "active": f.get("active", False), "permanent": f.get("permanent", False),
            })
        return out

    def state_read(self, req):
        return {"images": self.state_list(), "splitStatus": 0}

    def state_write(self, req):
        confirm = field(req.body, "confirm", "bool", False)
        h = field(req.body, "hash", "bytes")
        if h is None or len(h) == 0:
            if not confirm:
                raise GroupStatus(GROUP_IMAGE, IMG_ERR_INVALID_HASH)
            slot = _ACTIVE
        elif len(h) != 32:
            raise GroupStatus(GROUP_IMAGE, IMG_ERR_INVALID_HASH)
        else:
            slot = -1
            for s in (0, 1):
                try:
                    if read_info(self.store, s)[1] == bytes(h):
                        slot = s
                        break
                except GroupStatus:
                    pass
            if slot < 0:
                raise GroupStatus(GROUP_IMAGE, IMG_ERR_HASH_NOT_FOUND)
        rc = self._set_next_boot_slot(slot, confirm)
        if rc:
            raise GroupStatus(GROUP_IMAGE, rc)
        return self.state_read(req)

    def _set_next_boot_slot(self, slot, confirm):
        nbs, t = self.next_boot()
        if not confirm and slot == _ACTIVE:
            return IMG_ERR_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED
        if t == _TEST:
            if not confirm and slot == nbs:
                return 0
            return IMG_ERR_IMAGE_ALREADY_PENDING
        if t == _NORMAL:
            if confirm and slot == nbs:
                return 0
            if (slot == _ACTIVE and nbs != _ACTIVE) or (not confirm and slot != _ACTIVE and slot == nbs):
                return IMG_ERR_IMAGE_ALREADY_PENDING
        if t == _REVERT:
            if confirm and slot == nbs:
                return 0
            if not confirm:
                return IMG_ERR_IMAGE_ALREADY_PENDING
        if slot == _ACTIVE:
            rc = set_confirmed(self.store)
            if not rc:
                self._event("confirm", slot=0)
        else:
            rc = set_pending(self.store, confirm)
            if not rc:
                self._event("test", slot=slot, permanent=confirm)
        return rc

    # --- upload -------------------------------------------------------------

    def _inspect(self, body, off, size, data, sha, upgrade):
        """img_mgmt_upload_inspect: ``(proceed, area)`` or raise GroupStatus."""
        if off is None:
            raise GroupStatus(GROUP_IMAGE, IMG_ERR_INVALID_OFFSET)
        if off == 0:
            if data is None or len(data) < 32:
                raise GroupStatus(GROUP_IMAGE, IMG_ERR_INVALID_IMAGE_HEADER)
            if size is None:
                raise GroupStatus(GROUP_IMAGE, IMG_ERR_INVALID_LENGTH)
            if bytes(data[0:4]) != IMAGE_MAGIC:
                raise GroupStatus(GROUP_IMAGE, IMG_ERR_INVALID_IMAGE_HEADER_MAGIC)
            if sha is not None and len(sha) > 32:
                raise GroupStatus(GROUP_IMAGE, IMG_ERR_INVALID_HASH)
            if sha is not None and len(sha) and self.area != -1 and bytes(sha) == self.data_sha:
                return False, self.area  # resume: answer the current offset
            area = -1
            for s in (0, 1):
                if not self.slot_in_use(s):
                    area = s
                    break
            if area < 0:
                raise GroupStatus(GROUP_IMAGE, IMG_ERR_NO_FREE_SLOT)
            if size > self.store.slot_size(area):
                raise GroupStatus(GROUP_IMAGE, IMG_ERR_INVALID_IMAGE_TOO_LARGE)
            if upgrade:
                try:
                    cur = read_info(self.store, _ACTIVE)[0]
                except GroupStatus:
                    raise GroupStatus(GROUP_IMAGE, IMG_ERR_VERSION_GET_FAILED)
                new = (data[20], data[21], data[22] | (data[23] << 8))
                if _vercmp(cur, new) >= 0:
                    raise GroupStatus(GROUP_IMAGE, IMG_ERR_CURRENT_VERSION_IS_NEWER)
            return True, area
        if off != self.off:
            return False, self.area  # wrong offset: drop the data, tell the expected one
        if off + (len(data) if data is not None else 0) > self.size:
            raise GroupStatus(GROUP_IMAGE, IMG_ERR_INVALID_IMAGE_DATA_OVERRUN)
        return True, self.area

    def _is_erased(self, slot):
        f = getattr(self.store, "is_erased", None)
        if f is not None:
            return f(slot)
        size = self.store.slot_size(slot)
        buf = bytearray(256)
        off = 0
        while off < size:
            n = min(256, size - off)
            mv = memoryview(buf)[:n]
            self.store.read(slot, off, mv)
            for b in mv:
                if b != 0xFF:
                    return False
            off += n
        return True

    def _erase_for_image(self, slot, size):
        # img_mgmt_erase_image_data(0, size): the pages holding the image, then
        # the page(s) holding the trailer if not already erased.
        page = self.store.page_size
        ssize = self.store.slot_size(slot)
        end = ((size + page - 1) // page) * page
        if end > ssize:
            end = ssize
        if end:
            self.store.erase(slot, 0, end)
        tstart = ((ssize - TRAILER_SIZE) // page) * page
        if tstart >= end:
            self.store.erase(slot, tstart, ssize - tstart)

    def _slot_sha(self, slot, size):
        h = sha256()
        buf = bytearray(1024)
        off = 0
        while off < size:
            n = min(len(buf), size - off)
            mv = memoryview(buf)[:n]
            self.store.read(slot, off, mv)
            h.update(mv)
            off += n
        return h.digest()

    def upload(self, req):
        b = req.body
        self.legacy_rc = req.server.legacy_rc
        image = field(b, "image", "uint", 0)  # noqa: F841  (single image: ignored)
        data = field(b, "data", "bytes")
        size = field(b, "len", "uint")
        off = field(b, "off", "uint")
        sha = field(b, "sha", "bytes")
        upgrade = field(b, "upgrade", "bool", False)
        try:
            proceed, area = self._inspect(b, off, size, data, sha, upgrade)
        except GroupStatus:
            self.reset_upload()
            raise
        if not proceed:
            return self._good()
        last = False
        match = False
        if off == 0:
            self.area = area
            self.size = size
            self.off = 0
            self.data_sha = bytes(sha) if sha is not None else b""
            self._erased_to = 0
            self._event("upload-start", slot=area, size=size)
            if self.image_check and len(self.data_sha) == 32:
                if self._slot_sha(area, size) == self.data_sha:
                    # Underlying data already matches: done, nothing to write.
                    self.off = size
                    self._event("upload-done", slot=area, size=size, match=True)
                    rsp = self._good(True)
                    self.reset_upload()
                    return rsp
            if not self.progressive_erase and not self._is_erased(area):
                self._erase_for_image(area, size)
        n = len(data) if data is not None else 0
        if n:
            if self.off + n == self.size:
                last = True
            if self.progressive_erase:
                self._progressive_erase(self.off + n, last)
            self.store.write(self.area, self.off, data)
            self.off += n
            self._event("upload-chunk", slot=self.area, off=self.off, size=self.size)
            if self.off == self.size:
                if self.image_check:
                    # Zephyr's img_mgmt_upload: flash_img_check over the slot (what it holds, not
                    # what this session sent: a resumed upload's earlier part counts too).
                    match = len(self.data_sha) == 32 and self._slot_sha(self.area, self.size) == self.data_sha
                self._event("upload-done", slot=self.area, size=self.size, match=match)
        rsp = self._good(match if last and self.image_check else None)
        if last:
            self.reset_upload()
        return rsp

    def _progressive_erase(self, end, last):
        page = self.store.page_size
        ssize = self.store.slot_size(self.area)
        while self._erased_to < end:
            self.store.erase(self.area, self._erased_to, page)
            self._erased_to += page
        if last:
            tstart = ((ssize - TRAILER_SIZE) // page) * page
            if tstart >= self._erased_to:
                self.store.erase(self.area, tstart, ssize - tstart)

    def _good(self, match=None):
        rsp = {}
        if req_legacy(self):
            rsp["rc"] = MGMT_ERR_EOK
        rsp["off"] = self.off
        if match is not None:
            rsp["match"] = match
        return rsp

    # --- erase / slot info ------------------------------------------------------

    def erase(self, req):
        self.legacy_rc = req.server.legacy_rc
        slot = field(req.body, "slot", "uint", 1)
        try:
            read_info(self.store, slot)
            valid = True
        except GroupStatus:
            valid = False
        if valid and self.slot_in_use(slot):
            raise GroupStatus(GROUP_IMAGE, IMG_ERR_NO_FREE_SLOT)
        if slot > 1:
            raise GroupStatus(GROUP_IMAGE, IMG_ERR_INVALID_SLOT)
        if not self._is_erased(slot):
            self.store.erase(slot, 0, self.store.slot_size(slot))
        self.reset_upload()
        self._event("erase", slot=slot)
        return {"rc": MGMT_ERR_EOK} if req_legacy(self) else {}

    def slot_info(self, req):
        return {"images": [{"image": 0, "slots": [
            {"slot": 0, "size": self.store.slot_size(0)},
            {"slot": 1, "size": self.store.slot_size(1)},
        ]}]}


def req_legacy(group):
    """True when responses carry ``"rc": 0`` (older Zephyr, set by the server)."""
    return getattr(group, "legacy_rc", False)
