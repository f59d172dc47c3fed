-- The control center's customer search (docs/control-center.md, "Paging and search") walks the
-- newest customers testing each for the term. Lowering the display name and the email on every
-- walked row was most of its cost, and reading them meant a heap page per row. `search_text`
-- holds them lowered once, `lower(display_name) || chr(1) || lower(email)` (NULL read as ''),
-- so the walk tests `strpos(search_text, lower(term)) > 0` on an index that carries it (0037)
-- without touching the table. chr(1) keeps a match from spanning the name and the email (a term
-- holding chr(1) is searched through the trigram indexes instead).
-- A trigger, not a generated column: adding a STORED generated column rewrites the table under
-- an ACCESS EXCLUSIVE lock, while a nullable column is a brief catalog change, and the trigger
-- keeps it right for every write, the running release's included. 0036 fills existing rows.
ALTER TABLE customers ADD COLUMN search_text text;

CREATE FUNCTION customers_search_text(display_name text, email text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT lower(coalesce(display_name, '')) || chr(1) || lower(coalesce(email, '')) $$;

CREATE FUNCTION customers_search_text_write() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.search_text := customers_search_text(NEW.display_name, NEW.email);
    RETURN NEW;
END
$$;

-- Every insert and update (not only those naming the two columns), so the column cannot be set
-- to anything else.
CREATE TRIGGER customers_search_text BEFORE INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION customers_search_text_write();
