"""Pulumi programs for the Digital Fujian targets: cloud tenancies and the e-government extranet.

`infra/__main__.py` is the Pulumi entry point (`main: infra/` in Pulumi.yaml). Everything that
decides *what* to build is plain Python (settings, layout, addresses) so that it can be tested and
reviewed without the CLI; the `cloud` and `network` packages turn it into resources.
"""
