"""The config store: resources from the mesh directory plus those applied through the API."""
