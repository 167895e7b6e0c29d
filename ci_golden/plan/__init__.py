"""From the suite to CI jobs: selection, sharding, GitHub matrices and GitLab child pipelines."""
