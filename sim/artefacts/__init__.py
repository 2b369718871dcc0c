"""The JSON artefacts a command writes, typed one module per artefact; their reading and writing."""
