"""The web dashboard (Kiali's role). Arrives with a later issue."""
