"""The update app's link to the neighbour over Bluetooth LE (``TRANSPORT = "ble"``).

Apart from ``smpdfu_board`` so that a board updating over UART does not hold
this code or its names.
"""


def open_ble(cfg, hw, max_packet):
    """A :class:`~smpdfu.ble.BLETransport` to ``BLE_TARGET`` for SMP packets of up to
    ``max_packet`` bytes: through the board's ``make_ble_adapter()`` if it has one,
    else the platform's adapter (``ble_cp`` for ``busio``, else ``ble_mp``)."""
    from smpdfu.ble import BLETransport  # here: loading this module (tests do) loads no BLE code
    from smpdfu_board import setting

    make = getattr(cfg, "make_ble_adapter", None)
    if make is not None:
        adapter = make()
    elif hw == "busio":
        from smpdfu.ble_cp import CPBLEAdapter

        adapter = CPBLEAdapter(pair=setting(cfg, "BLE_PAIR"))
    else:
        from smpdfu.ble_mp import MPBLEAdapter

        adapter = MPBLEAdapter(pair=setting(cfg, "BLE_PAIR"))
    return BLETransport(adapter, setting(cfg, "BLE_TARGET"), max_packet=max_packet,
                        connect_ms=setting(cfg, "CONNECT_MS"))
