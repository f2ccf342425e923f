"""Pipeline stages as plain classes: a batch in, outputs per topic out. Agents drive them."""
