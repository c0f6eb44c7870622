"""The spec files (grammar, proto, docs), shipped inside the package as maseir.spec."""
