"""Golden files and test cases: the golden model, discovery of the tree, migration, pruning."""
