import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # tests/battery.py
os.environ.setdefault("VAELAB_CACHE", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "vaelab"))
