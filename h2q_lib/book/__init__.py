"""The book on top of the run folders: tables and glue for the chapters, the chapters'
Finding sentences, the papermill pipeline, page checks and publishing."""
