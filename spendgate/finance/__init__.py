"""Finance views: merged pull requests from GitHub and the cost per merged PR."""
