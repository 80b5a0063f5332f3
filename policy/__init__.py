"""The Digital Fujian policy pack: `pulumi preview --policy-pack policy` (docs/INFRA.md)."""
