"""Adafruit Feather nRF52840 Express, CircuitPython.
Deploy: make deploy-circuitpython BOARD=feather_nrf52840 DRIVE=/media/$USER/CIRCUITPY

  Feather TX -> nRF UART RX
  Feather RX <- nRF UART TX
  Feather GND -- nRF GND
Pins are names in CircuitPython's ``board`` module. boot.py gives code.py write
access to the drive unless the user switch (SW) is held during reset.
"""

NAME = "Adafruit Feather nRF52840"
UART_TX = "TX"
UART_RX = "RX"
BAUDRATE = 115200
UART_RXBUF = 2048
LED = "LED"  # the red LED (D3)
LED_ACTIVE_LOW = False

# Or no wires: SMP over BLE with the Feather's own radio (adafruit_ble: install
# it with `circup install adafruit_ble`). BLE_TARGET: the nRF's advertised name
# or its address "AA:BB:CC:DD:EE:FF"; None takes the first device advertising
# the SMP service.
TRANSPORT = "uart"  # "ble"
BLE_TARGET = None

IMAGE_PATH = "/update/app.bin"
STATUS_PATH = "/update/status.json"

CONNECT_MS = 5000
TIMEOUT_MS = 3000
RESET_WAIT_MS = 60000
ALLOW_DOWNGRADE = False
