"""Action pages: public pages where supporters sign up, sign petitions and write letters."""
