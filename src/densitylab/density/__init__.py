"""Electron-density learning in an atom-centred basis (SALTED-style)."""
