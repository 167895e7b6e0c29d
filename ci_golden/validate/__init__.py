"""Checks of the tree against the schemas and the rules no schema can say."""
