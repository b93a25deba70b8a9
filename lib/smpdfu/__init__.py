"""smpdfu: update a Zephyr/MCUboot device's firmware over SMP (MCUmgr) from any Python.

Importing the package is cheap (it imports nothing); use the submodules::

    from smpdfu.transport import SerialTransport
    from smpdfu.client import SMPClient

    client = SMPClient(SerialTransport(uart))
    client.upload(open("app.signed.bin", "rb"))
"""

__version__ = "0.1.0"
