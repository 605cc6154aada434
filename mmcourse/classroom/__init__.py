"""For teachers and authors: exercise lists, grading, and cleaning executed notebooks."""
