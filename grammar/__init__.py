"""Front end: DTS text (lark) and DTB bytes, both to one resolved `Tree`."""
