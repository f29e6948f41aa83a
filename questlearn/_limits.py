"""Limits shared by the stages that write a manifest and the readers that check it."""

#: The longest string a manifest records (a column name, a class, a vocabulary value): longer values are
#: hashed into the buckets by the encoding and refused by the manifest's schema.
MAX_STRING_LENGTH = 4096
