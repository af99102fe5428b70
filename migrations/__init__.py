"""Schema migrations as data: ``NNNN_verb_noun.sql`` files, applied in order by logwarden.migrator."""
