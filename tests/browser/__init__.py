"""The real browser SDKs (npm packages, installed by `make test`) and the pages that load them."""
