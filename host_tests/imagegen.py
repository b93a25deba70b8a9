"""Build and inspect real MCUboot images with PyPI ``imgtool``, for host tests.

imgtool runs in-process (through its click commands, via the host module
``smpdfu_host.imgtool_image``) to stay fast: tests build many images. Keys are
generated once per process and cached.

Typical use::

    from imagegen import make_image, imgtool_verify, dumpinfo
    path = make_image(tmp_path / "app.bin", version="1.2.3+4", size=8000, key="ecdsa-p256")
    res = imgtool_verify(path)          # VerifyResult(ok, version, digest, output)
    info = dumpinfo(path)               # dict of header fields and TLV lists
"""

import atexit
import os
import re
import shutil
import tempfile

from smpdfu_host import imgtool_image
from smpdfu_host.imgtool_image import ImgtoolError, run_imgtool  # noqa: F401  (part of this API)

KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "ed25519", "x25519")
DEFAULT_SLOT_SIZE = 0x60000

_key_dir = None
_keys = {}


def key_path(kind):
    """Path of a cached private key of ``kind`` (one of KEY_TYPES), made on first use."""
    global _key_dir
    if kind not in KEY_TYPES:
        raise ValueError("unknown key type %r (one of %s)" % (kind, ", ".join(KEY_TYPES)))
    p = _keys.get(kind)
    if p is None:
        if _key_dir is None:
            _key_dir = tempfile.mkdtemp(prefix="smpdfu-keys-")
            atexit.register(shutil.rmtree, _key_dir, True)
        p = os.path.join(_key_dir, kind + ".pem")
        run_imgtool("keygen", "-k", p, "-t", kind)
        _keys[kind] = p
    return p


def payload_bytes(size, seed=0):
    """``size`` pseudo-random bytes, the same for the same ``seed``."""
    return imgtool_image.payload(size, seed)


def make_image(path, version="1.2.3", size=4096, header_size=0x200, pad_header=True,
               slot_size=DEFAULT_SLOT_SIZE, key=None, confirm=False, test=False, pad=False,
               seed=0, security_counter=None, boot_record=None, dependencies=None,
               non_bootable=False, align=None, max_align=None, sha=None,
               custom_tlvs=(), encrypt=None, payload=None, extra_args=()):
    """Write a real MCUboot image made by ``imgtool sign`` to ``path``; return the path (str).

    ``size``: payload (firmware body) bytes, deterministic from ``seed`` unless
    ``payload`` is given. ``version``: imgtool syntax ``maj.min.rev+build``.
    ``pad_header`` False makes the payload start with ``header_size`` zero bytes
    (imgtool writes the header over them; img_size is then ``size``).
    ``key``: None (unsigned: SHA256 TLV only) or a KEY_TYPES name.
    ``pad``/``confirm``/``test`` pad the file to ``slot_size`` with an MCUboot
    trailer. ``security_counter`` (int or "auto"), ``boot_record`` (sw_type
    string), ``dependencies`` (imgtool's "(id,ver)" string) and ``custom_tlvs``
    (``[(tag, value_str)]``) create protected TLVs. ``encrypt``: a key type
    ("x25519", "ecdsa-p256", "rsa-2048") to AES-encrypt the body for. ``extra_args`` go to imgtool
    as-is.
    """
    body = payload if payload is not None else payload_bytes(size, seed)
    if not pad_header:
        body = bytes(header_size) + body
    args = []
    if key is not None:
        args += ["-k", key_path(key)]
    if confirm:
        args.append("--confirm")
    if test:
        args.append("--test")
    if pad:
        args.append("--pad")
    if security_counter is not None:
        args += ["-s", security_counter]
    if boot_record is not None:
        args += ["--boot-record", boot_record]
    if dependencies is not None:
        args += ["-d", dependencies]
    if non_bootable:
        args.append("--non-bootable")
    if align is not None:
        args += ["--align", align]
    if max_align is not None:
        args += ["--max-align", max_align]
    if sha is not None:
        args += ["--sha", sha]
    if encrypt is not None:
        args += ["-E", key_path(encrypt)]
    for tag, value in custom_tlvs:
        args += ["--custom-tlv", tag, value]
    return imgtool_image.make_image(path, version, slot_size=slot_size, header_size=header_size,
                                    pad_header=pad_header, body=body, extra_args=args + list(extra_args))


class VerifyResult:
    """What ``imgtool verify`` said: ``ok``, ``version`` ("1.2.3+4"), ``digest`` (hex)."""

    def __init__(self, ok, version, digest, output):
        self.ok = ok
        self.version = version
        self.digest = digest
        self.output = output

    def __repr__(self):
        return "VerifyResult(ok=%r, version=%r, digest=%r)" % (self.ok, self.version, self.digest)


def imgtool_verify(path, key=None):
    """Run ``imgtool verify`` (with the cached ``key`` of that type, if named)."""
    args = ["verify"]
    if key is not None:
        args += ["-k", key_path(key)]
    code, out = run_imgtool(*(args + [path]), check=False)
    m = re.search(r"Image version: (\S+)", out)
    d = re.search(r"Image digest: ([0-9a-f]+)", out)
    return VerifyResult(code == 0 and "correctly validated" in out,
                        m.group(1) if m else None, d.group(1) if d else None, out)


def _hex_bytes(lines):
    return bytes(int(x, 16) for line in lines for x in line.split())


def dumpinfo(path):
    """Parse ``imgtool dumpinfo`` text into a dict.

    Keys: ``magic``, ``load_addr``, ``hdr_size``, ``protected_tlv_size``,
    ``img_size``, ``flags`` (ints), ``version`` (str), ``prot_tlvs`` and ``tlvs``
    (lists of ``(type, length, data_bytes)``), ``prot_tlv_area_size`` and
    ``tlv_area_size`` (ints or None), ``output`` (the raw text).
    """
    _, out = run_imgtool("dumpinfo", path)
    info = {"output": out, "prot_tlvs": [], "tlvs": [], "prot_tlv_area_size": None,
            "tlv_area_size": None}
    for k in ("magic", "load_addr", "hdr_size", "protected_tlv_size", "img_size", "flags"):
        # values print as "0x10" or, for flags, "NON_BOOTABLE (0x10)"
        m = re.search(r"^%s:[^\n]*?(0x[0-9a-fA-F]+)\)?$" % k, out, re.M)
        info[k] = int(m.group(1), 16) if m else None
    m = re.search(r"^version:\s+(\S+)", out, re.M)
    info["version"] = m.group(1) if m else None
    section = None
    entry = None
    data_lines = []

    def flush():
        if entry is not None:
            info[section].append((entry[0], entry[1], _hex_bytes(data_lines)))

    for line in out.splitlines():
        s = line.strip()
        if s.startswith("#") or s.startswith("-----"):
            flush()
            entry, data_lines = None, []
            if s.startswith("#"):
                if s.startswith("#### Protected TLV area"):
                    section = "prot_tlvs"
                elif s.startswith("#### TLV area"):
                    section = "tlvs"
                else:
                    section = None
        elif section is None:
            continue
        elif s.startswith("area size:"):
            key = "prot_tlv_area_size" if section == "prot_tlvs" else "tlv_area_size"
            info[key] = int(s.split()[-1], 16)
        elif s.startswith("type:"):
            entry = [int(re.search(r"\((0x[0-9a-fA-F]+)\)", s).group(1), 16), None]
        elif entry is not None and s.startswith("len:"):
            entry[1] = int(s.split()[-1], 16)
        elif entry is not None and s.startswith("data:"):
            data_lines.append(s[5:])
        elif entry is not None and data_lines and s.startswith("0x"):
            data_lines.append(s)
    flush()
    return info
