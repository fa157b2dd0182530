"""Not part of CI: no package in loktar.json points here."""
