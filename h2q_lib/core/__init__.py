"""What every stage uses: the error types, run folders and atomic JSON, the offline hub guard,
and the provenance (git revision, code fingerprint) that results record."""
