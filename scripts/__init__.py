"""Tools of the template repository: rendering it and building offline base images."""
