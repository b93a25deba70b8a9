"""SMP (MCUmgr) protocol numbers a board's update uses: ops, version, groups, command ids.

Sources: Zephyr ``smp/smp.h`` (ops, versions), ``mgmt/mgmt_defines.h``
(groups), ``grp/os_mgmt/os_mgmt.h`` and ``grp/img_mgmt/img_mgmt.h`` (command
ids), checked against PyPI ``smp`` in ``host_tests/test_wire_oracles.py``.

Every public name here costs heap on a board (a global per name), so this
module holds only what a board's update sends and reads. The return codes
(MGMT_ERR, the OS and image group rc values), their names, and the numbers
only the CLI's commands and the servers use (SMP v1, OS info, bootloader info,
image erase) live in :mod:`smpdfu.errcodes`, which a client loads only when it
builds an error.
"""

from .compat import const

# SMP header op (bits 0-2 of byte 0) and version (bits 3-4; SMP_V1 is in errcodes).
# A response's op is its request's | 1 (read 1, write 3): computed so, not named.
OP_READ = const(0)
OP_WRITE = const(2)
SMP_V2 = const(1)  # group errors as err {group, rc}

# Management groups.
GROUP_OS = const(0)
GROUP_IMAGE = const(1)

# OS group (0) commands.
OS_ECHO = const(0)
OS_RESET = const(5)
OS_PARAMS = const(6)

# Image group (1) commands.
IMG_STATE = const(0)
IMG_UPLOAD = const(1)
IMG_SLOT_INFO = const(6)
