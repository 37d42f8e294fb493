"""examples/notebook.ipynb runs top to bottom in a real Jupyter kernel (nbclient + ipykernel),
against the simulators, and leaves no pyburnerkit thread and no temporary directory behind.

nbclient drives the kernel from a child interpreter: its ZeroMQ sockets (and their
``ResourceWarning``\\ s) stay out of the test process, whose leak check counts sockets.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap
from typing import Any, Dict, List

import nbformat

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "notebook.ipynb"

RUNNER = textwrap.dedent("""
    import sys
    import nbformat
    from nbclient import NotebookClient
    source, target, workdir = sys.argv[1:]
    notebook = nbformat.read(source, as_version=4)
    # a cell that raises stops here with its traceback (CellExecutionError)
    NotebookClient(notebook, timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": workdir}}).execute()
    nbformat.write(notebook, target)
    """)


def outputs(cell: Any) -> List[Dict[str, Any]]:
    return list(cell.get("outputs", []))


def text_of(cell: Any) -> str:
    parts = []
    for out in outputs(cell):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def test_the_example_notebook_runs_and_cleans_up(tmp_path: pathlib.Path) -> None:
    stored = nbformat.read(str(EXAMPLE), as_version=4)
    nbformat.validate(stored)
    assert all(not outputs(c) for c in stored.cells if c.cell_type == "code"), \
        "the example is stored without outputs"
    temp_root = tempfile.gettempdir()
    before = {n for n in os.listdir(temp_root) if n.startswith("pbk-notebook-")}
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    executed = tmp_path / "executed.ipynb"
    result = subprocess.run([sys.executable, "-c", RUNNER, str(EXAMPLE), str(executed),
                             str(workdir)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-4000:]
    notebook = nbformat.read(str(executed), as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code)  # every cell ran
    errors = [o for c in code for o in outputs(c) if o.get("output_type") == "error"]
    assert errors == []
    # the client's rich display reached the notebook as HTML, with its state and units
    shown = [o["data"]["text/html"] for c in code for o in outputs(c)
             if "text/html" in o.get("data", {})]
    assert any("AfterburnerClient" in h and "connected" in h and "°C" in h for h in shown)
    assert any("HeaterStatus" in h and "input_voltage_v" in h for h in shown)
    # two plots rendered inline (the recording's series and the shot), each shown once
    images = [o for c in code for o in outputs(c) if "image/png" in o.get("data", {})]
    assert len(images) == 2
    last = text_of(code[-1])
    assert "left open: 0" in last
    assert "pyburnerkit threads: []" in last
    assert "temporary directory left: False" in last
    after = {n for n in os.listdir(temp_root) if n.startswith("pbk-notebook-")}
    assert after - before == set()
    assert list(workdir.iterdir()) == []  # nothing written to the working directory
