"""The mesh certificate authority (SPIFFE identities). Arrives with the security issue."""
