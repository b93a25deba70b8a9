"""ESP32 DevKit (ESP32-WROOM-32 DevKitC / DOIT DevKit v1), MicroPython.
Deploy: make deploy BOARD=esp32_devkit PORT=/dev/ttyUSB0

UART2 on its usual pins (UART0 is the USB REPL, UART1's default pins are the flash):
  ESP32 GPIO17 (UART2 TX) -> nRF UART RX
  ESP32 GPIO16 (UART2 RX) <- nRF UART TX
  ESP32 GND               -- nRF GND
"""

NAME = "ESP32 DevKit"
UART_ID = 2
UART_TX = 17
UART_RX = 16
BAUDRATE = 115200
UART_RXBUF = 2048
LED = 2  # the blue LED on GPIO2 of most DevKit v1 boards (DevKitC has none: set None)
LED_ACTIVE_LOW = False
MPY_ARCH = "xtensawin"  # mpy-cross -march: native code (viper CRC/base64) for the ESP32

# Or no wires: SMP over BLE with the ESP32's radio (MicroPython's bluetooth
# module, NimBLE). BLE_TARGET: the nRF's advertised name or its address
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
