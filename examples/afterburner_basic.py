"""pyBurner's README example, ported: the import changed, same method names, no event loop.

With pyBurner this needed ``asyncio.run(...)``, a task for ``init_websocket()`` and a sleep
hoping the data had arrived. Here ``init_websocket()`` returns once the complete state is in,
and every call blocks until the controller has answered. The one addition: a client changes
the heater only when opened with ``allow_writes=True`` (without it ``set_tempdesired`` raises
``WriteNotAllowedError`` and sends nothing; stopping the heater is always allowed).
pyBurner's names live in ``pyburnerkit.afterburner.compat``; new code uses
``AfterburnerClient``'s own (``read_status()``, ``reported_value()``,
``set_desired_temperature()``).

    python examples/afterburner_basic.py [HOST]    # default: the built-in simulator
"""

import os
import sys

from pyburnerkit.afterburner.compat import Client  # pyBurner: from pyburner import Client

host = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AFTERBURNER_HOST", "sim://")

client = Client(host, allow_writes=True)  # pyBurner: Client(host)
client.init_websocket()
print("TempCurrent:", client.fetch_data("TempCurrent"))
print("TempBody:", client.fetch_data("TempBody"))
print("RunState:", client.fetch_data("RunState", refresh=True))
client.set_tempdesired(21)
print("TempDesired:", client.fetch_data("TempDesired"))
client.close_websocket()
