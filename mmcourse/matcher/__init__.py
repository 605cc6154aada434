"""The matcher family: one model that reads an image and a sentence and answers ``match``
or a question, with the fusions of notebook 04 and the relational heads of notebook 06."""
