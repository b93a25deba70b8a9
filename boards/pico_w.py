"""Raspberry Pi Pico W (RP2040 + CYW43), MicroPython. Deploy: make deploy BOARD=pico_w PORT=/dev/ttyACM0

Same wiring as the Pico: GP0 (UART0 TX) -> nRF RX, GP1 (UART0 RX) <- nRF TX, GND -- GND.
The Pico W's LED hangs off the wireless chip; MicroPython names it "LED" too.
"""

NAME = "Raspberry Pi Pico W"
UART_ID = 0
UART_TX = 0  # GP0
UART_RX = 1  # GP1
BAUDRATE = 115200
UART_RXBUF = 2048
LED = "LED"  # the CYW43's WL_GPIO0
LED_ACTIVE_LOW = False
MPY_ARCH = "armv6m"  # mpy-cross -march: native code (viper CRC/base64) for the RP2040

# Or no wires: SMP over BLE with the Pico W's radio (MicroPython's bluetooth
# module, BTstack). BLE_TARGET: the nRF's advertised name or its address
# "AA:BB:CC:DD:EE:FF"; None takes the first device advertising the SMP service.
TRANSPORT = "uart"  # "ble"
BLE_TARGET = None

IMAGE_PATH = "/update/app.bin"
STATUS_PATH = "/update/status.json"

CONNECT_MS = 5000
TIMEOUT_MS = 3000
RESET_WAIT_MS = 60000
ALLOW_DOWNGRADE = False

# Over the air (docs/boards.md): set MANIFEST_URL to update from a URL instead of IMAGE_PATH.
MANIFEST_URL = None  # e.g. "https://example.com/nrf/manifest.json"
CA_PATH = None  # PEM/DER of the server's CA, required for https
WIFI_SSID = None
WIFI_PASSWORD = None
