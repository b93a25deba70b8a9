"""Update the neighbour from a URL: the :class:`~smpdfu.updater.Updater` whose upload step is a download.

::

    m = fota_download.fetch_manifest(url, ca=ca)
    u = DownloadUpdater(client, m.url, sha=m.sha256, size=m.size, version=m.version, ca=ca)
    res = u.run(u.plan_info())          # an UpdateResult, as Updater.run gives

The steps and their safety rules are the Updater's (connect, compare
versions, upload, test, reset, confirm); the upload streams
:func:`smpdfu.fota_download.download` into an :class:`~smpdfu.dfu_smp.SMPTarget`.
Before the download only the manifest's version is known, so the plan runs
on a stand-in ImageInfo (:meth:`plan_info`: the version, and the image hash
when an earlier run's journal has it); after the download the stand-in gets
the real image's fields, and test/confirm go by its hash. A manifest whose
version is not the image's is refused before anything is marked for test.
Download failures end the run with ``"download failed: ..."`` (``transient``
for a lost connection or a 5xx, not for a refusal, a bad certificate or a
bad image).
"""

from .compat import ticks_diff, ticks_ms
from .dfu_smp import SMPTarget
from .errors import BadImage, SMPError
from .mcuboot import ImageInfo
from .sock import NetError, TLSError
from .updater import FAILED, STAGE_UPLOAD, UpdateResult, Updater


class _DownloadFailed(Exception):
    # Carries the download's own error out of Updater.run (which would call it a lost link).
    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


def _transient(e):
    # A lost connection or a server error may pass; a refusal, a certificate or a bad image will not.
    from .fota_download import Changed

    if isinstance(e, (BadImage, Changed, TLSError, ValueError)):
        return False
    return getattr(e, "status", 500) >= 500


class _SizedTarget(SMPTarget):
    # An SMPTarget that tells the size it was started with (for progress(done, total)).
    size = 0

    def init(self, size, image=0, sha=None):
        self.size = size
        SMPTarget.init(self, size, image, sha)


class DownloadUpdater(Updater):
    """An :class:`~smpdfu.updater.Updater` fed from ``url`` (see the module doc).

    ``sha``/``size``/``version``: the manifest's (None for a bare image URL);
    ``ca``, ``timeout_ms``, ``retries``: for :func:`smpdfu.fota_download.download`;
    the other keywords are the Updater's (``progress(done, total)`` follows
    the bytes the neighbour holds).
    """

    def __init__(self, client, url, sha=None, size=None, version=None, ca=None, timeout_ms=10000, retries=5,
                 **kw):
        super().__init__(client, **kw)
        self.url = url
        self.sha = sha
        self.size = size
        self.version = version
        self.ca = ca
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.skipped = 0  # bytes the neighbour held that the last download did not fetch

    def plan_info(self, image_hash=None):
        """The stand-in ImageInfo for the plan: the manifest's version, size, sha and ``image_hash`` when known."""
        from .before_upload import parse_version

        v = parse_version(self.version) if self.version else None
        info = ImageInfo(0, 0, 0, 0, 0, v or (0, 0, 0, 0))
        info.file_sha = self.sha
        info.file_size = self.size
        info.hash = image_hash
        return info

    def stream(self, info, image=0):
        """Download ``url`` into the neighbour's slot; ``info`` becomes the image's; the UploadResult.

        Raises the download's own errors (:mod:`smpdfu.fota_download`) and the
        neighbour's; a manifest version that is not the image's is
        :class:`~smpdfu.fota_download.Changed`.
        """
        from . import fota_download

        progress = self.progress
        target = None

        def held(event, value):
            if event == "progress" and progress is not None:
                progress(value, target.size)

        target = _SizedTarget(self.client, callback=held, **self.upload_options)
        got = fota_download.download(self.url, target, sha=self.sha, size=self.size, retries=self.retries,
                                     timeout_ms=self.timeout_ms, ca=self.ca, image=image)
        from .before_upload import parse_version  # after the download: not held while it runs

        if self.version and parse_version(self.version) != tuple(got.version):
            raise fota_download.Changed("the image at %s is version %s, the manifest says %s"
                           % (self.url, got.version_str, self.version))
        for k in ("hash", "version", "version_str", "load_addr", "header_size", "protected_tlv_size",
                  "image_size", "flags", "tlvs", "protected_tlvs", "tlv_size", "total_size", "file_size",
                  "file_sha", "hash_verified"):
            setattr(info, k, getattr(got, k))
        self.upload_result = target.result()
        self.skipped = target.skipped
        return self.upload_result

    def upload(self, stream, info, res):
        """The Updater's upload step: :meth:`stream`, with the journal and the run's figures."""
        if self.record is not None:
            self.record(STAGE_UPLOAD, info.hash_hex())
        self.log("downloading %s into the neighbour" % self.url)
        t0 = ticks_ms()
        try:
            r = self.stream(info)
        except SMPError:
            raise  # the neighbour (a bad image too): the Updater's own handling
        except Exception as e:  # noqa: BLE001 - the download's errors, each named
            if isinstance(e, OSError) and not isinstance(e, NetError):
                raise  # the UART: the Updater's own handling
            raise _DownloadFailed(e)
        res.image_version = info.version_str
        res.bytes = r.size - r.resumed_from
        res.upload_seconds = ticks_diff(ticks_ms(), t0) / 1000
        if r.resumed_from:
            self.log("the neighbour already held %d bytes" % r.resumed_from)
        if self.skipped:
            self.log("%d of them were not downloaded again (the neighbour's match vouches for them)" % self.skipped)
        self.log("streamed %s: %d bytes over the link in %.1f s" % (info.version_str, res.bytes, res.upload_seconds))

    def run(self, info=None, stream=None):
        """Update the neighbour (``info``: :meth:`plan_info`'s stand-in); an UpdateResult."""
        info = info or self.plan_info()
        try:
            return Updater.run(self, stream, info)
        except _DownloadFailed as e:
            res = UpdateResult(FAILED, "download failed: %s" % e, self.version)
            res.error = e.error
            res.transient = _transient(e.error)
            return res
