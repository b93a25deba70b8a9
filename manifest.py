# MicroPython manifest: freeze smpdfu (and the update app) into your own firmware,
# the way micropython-lib's aioble is frozen. In your board's manifest:
#
#     include("/path/to/smpdfu/manifest.py")
#
# then build the port as usual (make BOARD=... FROZEN_MANIFEST=...). Frozen
# modules run from flash: their code takes no heap. smpdfu/native.py is compiled
# for the port's own architecture, so the viper CRC-16/base64 are kept.
# The file list is the app's import closure (host_tests/test_firmware_deploy.py
# checks it against smpdfu_host.deploy).

metadata(description="Update an nRF (Zephyr, MCUboot, MCUmgr) over UART or BLE with SMP", version="0.1.0")

package(
    "smpdfu",
    files=(
        "__init__.py",
        "after_upload.py",
        "b64.py",
        "before_upload.py",
        "ble.py",
        "ble_cp.py",
        "ble_mp.py",
        "ble_target.py",
        "cbor.py",
        "client.py",
        "compat.py",
        "crc16.py",
        "dfu_smp.py",
        "dfu_smp_rare.py",
        "dfu_target.py",
        "errcodes.py",
        "errors.py",
        "errtext.py",
        "fota_download.py",
        "fota_update.py",
        "framing.py",
        "header.py",
        "http.py",
        "mcuboot.py",
        "mcuboot_errors.py",
        "messages.py",
        "native.py",
        "proto.py",
        "sock.py",
        "transport.py",
        "uart.py",
        "update_report.py",
        "updater.py",
        "upload.py",
    ),
    base_path="lib",
)
module("smpdfu_app.py", base_path="firmware")
module("smpdfu_board.py", base_path="firmware")
module("smpdfu_fota.py", base_path="firmware")
module("smpdfu_busio.py", base_path="firmware")
module("smpdfu_ble_link.py", base_path="firmware")
