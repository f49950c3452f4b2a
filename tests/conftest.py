"""Both suites: the builder and tests/support importable, nothing else.

tests/unit needs only python3 (with pytest and hypothesis); the tool check
for the end-to-end tests is in tests/e2e/conftest.py.
"""

import os
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(TESTS))
sys.path.insert(0, os.path.join(TESTS, "support"))
