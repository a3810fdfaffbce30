"""Package data (tmstream.resources): pyproject maps this folder into the wheel; no code here."""
