"""Policy language: the frozen IR (``model``) and, in ``loader``, the only code that reads
raw YAML."""
