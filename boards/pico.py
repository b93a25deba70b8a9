"""Raspberry Pi Pico (RP2040), MicroPython. Deploy: make deploy BOARD=pico PORT=/dev/ttyACM0

Wiring (3.3 V logic on both sides):
  Pico GP0 (pin 1, UART0 TX) -> nRF UART RX
  Pico GP1 (pin 2, UART0 RX) <- nRF UART TX
  Pico GND (pin 3)           -- nRF GND
"""

NAME = "Raspberry Pi Pico"
UART_ID = 0
UART_TX = 0  # GP0
UART_RX = 1  # GP1
BAUDRATE = 115200  # must match the nRF's CONFIG_UART_CONSOLE / mcumgr UART
UART_RXBUF = 2048
LED = "LED"  # the on-board LED (GP25)
LED_ACTIVE_LOW = False
MPY_ARCH = "armv6m"  # mpy-cross -march: native code (viper CRC/base64) for the RP2040

IMAGE_PATH = "/update/app.bin"
STATUS_PATH = "/update/status.json"

# Flow options
CONNECT_MS = 5000  # how long to look for the neighbour at boot
TIMEOUT_MS = 3000  # per SMP request
RESET_WAIT_MS = 60000  # MCUboot's swap of two slots takes seconds on an nRF
ALLOW_DOWNGRADE = False
