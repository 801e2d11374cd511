"""The business logic stays free of the web: importing actions loads neither flask nor app."""

import subprocess
import sys


def test_importing_actions_loads_neither_flask_nor_app():
    code = (
        "import sys, actions, actions.create_invoice, actions.steps.customers, actions.steps.products; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'app', 'werkzeug')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
