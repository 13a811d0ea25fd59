"""Qt-free, torch-free document model: images, masks, layers, undo history, project files."""
