"""The Mate3 client works with the lowest pymodbus the ``mate3`` extra admits (3.9.0) as well
as with the newest, which the rest of the suite uses.

The client runs in a throwaway virtual environment holding pymodbus 3.9.0 (installed from the
package index, as a user's would be) and talks to the simulator of this environment (whose
pymodbus server API is 3.16's) over a real socket: connect, read the whole system, write a set
point. A failed install fails the test; it is never skipped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import venv
from pathlib import Path

from pyburnerkit.mate3.sim import Mate3Sim

ROOT = Path(__file__).resolve().parents[2]
LOWEST = "3.9.0"  # setup.cfg: pymodbus>=3.9 (3.8 needs an asyncio loop in the calling thread)

CHECK = textwrap.dedent("""
    import sys
    import pymodbus
    from pyburnerkit.mate3 import Mate3Client
    client = Mate3Client(sys.argv[1], allow_writes=True)
    try:
        client.connect(timeout=20)
        system = client.read_all()
        client.write("charge_controllers[3].config.absorb_volts", 57.6)
        print(pymodbus.__version__, len(system.charge_controllers))
    finally:
        client.close()
    """)


def test_the_client_works_with_the_lowest_pymodbus(tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", f"pymodbus=={LOWEST}",
                           "python-dotenv>=1.0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip could not install pymodbus {LOWEST}: {done.stderr[-2000:]}"
    sim = Mate3Sim(seed=3).start()
    try:
        run = subprocess.run([str(python), "-c", CHECK, sim.endpoint], capture_output=True,
                             text=True, timeout=120, env={"PYTHONPATH": str(ROOT),
                                                          "PATH": "/usr/bin:/bin"})
        written = sim.writes_received()
    finally:
        sim.close()
    assert run.returncode == 0, run.stderr[-3000:]
    version, controllers = run.stdout.split()
    assert version == LOWEST and int(controllers) >= 1
    assert written == 1
