"""The base interface layer: operations between a customer and a servicer."""
