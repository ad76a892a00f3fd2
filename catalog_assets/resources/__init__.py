"""Resources: one module per outside service, each with a production form and an embedded default."""
