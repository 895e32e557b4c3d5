# The statements the SQL scanner's profile is trained on (build_backend/sql_profile.py): what
# agents send through SqlCheck, in the mix of a database tool's traffic, not the benchmark's
# statement. One statement per line, after the dialects it is written for (pg, lite, my, or all);
# each must scan without an error in each of them (sql_train.c exits non-zero otherwise, and the
# build then goes on without a profile). '#' lines and blank lines are skipped.
all: SELECT id, name, email FROM users WHERE id = 42
all: SELECT count(*) FROM events WHERE kind = 'click' AND created_at > '2026-01-01'
all: SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > 100 ORDER BY o.total DESC LIMIT 50
all: SELECT u.id, lower(u.email) AS email, length(u.name) FROM users u LEFT JOIN profiles p ON p.user_id = u.id WHERE p.id IS NULL
all: SELECT region, sum(amount) AS total, avg(amount), max(amount) FROM sales.orders GROUP BY region HAVING sum(amount) > 1000 ORDER BY 2 DESC
all: SELECT * FROM products WHERE price BETWEEN 10.5 AND 99.99 AND name LIKE 'A%' ORDER BY price, name
all: SELECT a.x, b.y FROM a, b WHERE a.k = b.k UNION SELECT c.x, c.y FROM c UNION ALL SELECT d.x, d.y FROM d
all: SELECT e.name, d.name FROM employees e INNER JOIN departments d ON e.dept_id = d.id WHERE e.salary > (SELECT avg(salary) FROM employees)
all: SELECT CASE WHEN score >= 90 THEN 'A' WHEN score >= 80 THEN 'B' ELSE 'C' END AS grade, student_id FROM exam_results
all: SELECT id FROM tasks WHERE status IN ('open', 'blocked', 'review') AND assignee_id IS NOT NULL
all: SELECT t.id, t.title, count(c.id) AS comments FROM analytics.tickets t LEFT OUTER JOIN analytics.comments c ON c.ticket_id = t.id GROUP BY t.id, t.title
all: SELECT DISTINCT country FROM customers WHERE active = 1 ORDER BY country
all: SELECT coalesce(max(version), 0) + 1 AS next_version FROM schema_migrations
all: SELECT p.sku, p.name, s.qty FROM inventory.products p JOIN inventory.stock s ON s.sku = p.sku WHERE s.qty < 10 AND p.discontinued = 0
all: SELECT name FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > 500) AND NOT EXISTS (SELECT 1 FROM bans WHERE bans.user_id = users.id)
all: SELECT date(created_at) AS day, count(*) AS signups FROM accounts GROUP BY date(created_at) ORDER BY day DESC LIMIT 30
all: SELECT abs(delta), round(ratio, 2), upper(code), substr(label, 1, 8) FROM metrics WHERE delta <> 0 OR ratio >= 0.5
all: SELECT x.id FROM (SELECT id, rank FROM leaderboard WHERE season = 7) AS x WHERE x.rank <= 10
all: SELECT customer_id, sum(total) FROM orders /* paid only */ WHERE status = 'paid' GROUP BY customer_id ORDER BY 2 DESC LIMIT 20 -- top customers
all: WITH recent AS (SELECT * FROM sales.orders WHERE placed_at > '2026-06-01') SELECT region, count(*) FROM recent GROUP BY region
all: WITH a AS (SELECT id FROM users), b AS (SELECT user_id FROM orders) SELECT count(*) FROM a JOIN b ON b.user_id = a.id
all: SELECT id, title FROM posts WHERE author_id = 7 AND published = 1 ORDER BY created DESC LIMIT 10 OFFSET 20
all: SELECT t.*, row_number() OVER (PARTITION BY t.group_id ORDER BY t.ts DESC) AS rn FROM metrics.samples t
all: SELECT cast(amount AS decimal(10, 2)), nullif(currency, '') FROM payments.transactions WHERE settled = 1
pg: SELECT 'it''s', "Order Id" FROM "Sales" WHERE "Customer" = 'O''Brien'
lite: SELECT 'it''s', "Order Id" FROM "Sales" WHERE "Customer" = 'O''Brien'
all: INSERT INTO audit_log (actor, action, detail) VALUES ('svc', 'login', 'ok')
all: INSERT INTO archive.events SELECT * FROM events WHERE created_at < '2025-01-01'
all: UPDATE accounts SET balance = balance - 10, updated_at = '2026-12-03' WHERE id = 42
all: DELETE FROM sessions WHERE expires_at < '2026-12-01'
all: CREATE TABLE IF NOT EXISTS notes (id integer PRIMARY KEY, body text NOT NULL)
all: DROP TABLE scratch
all: EXPLAIN SELECT * FROM big_table WHERE id > 1000
all: SELECT 1; SELECT 2; SELECT name FROM t
pg: SELECT id, name FROM users WHERE id = $1 AND tenant = $2
pg: SELECT date_trunc('month', created_at) AS month, count(DISTINCT user_id) FROM analytics.page_views GROUP BY 1 ORDER BY 1
pg: SELECT id FROM tasks WHERE status = ANY(ARRAY['open', 'blocked']) FOR UPDATE SKIP LOCKED
pg: SELECT payload->>'user' AS who, (payload->'n')::int FROM webhook_events WHERE source = 'github' AND payload ? 'user'
pg: SELECT now() - interval '7 days', current_date, E'tab\there', $tag$ body $$ text $tag$, $$plain$$
pg: SELECT "Customer"."Name", c.id::text FROM "Sales"."Customer" AS c WHERE c.created > now() - '1 day'::interval
pg: WITH RECURSIVE tree AS (SELECT id, parent_id FROM nodes WHERE id = 1 UNION ALL SELECT n.id, n.parent_id FROM nodes n JOIN tree ON n.parent_id = tree.id) SELECT * FROM tree
pg: INSERT INTO users (email) VALUES ('a@example.com') ON CONFLICT (email) DO UPDATE SET seen = now() RETURNING id
pg: WITH moved AS (DELETE FROM queue WHERE id = 5 RETURNING *) INSERT INTO done SELECT * FROM moved
pg: SELECT nextval('orders_id_seq'), set_config('search_path', 'public', false), pg_sleep(0)
pg: EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM orders WHERE id = 1 /* plan /* nested */ check */
pg: COPY (SELECT * FROM users) TO STDOUT WITH (FORMAT csv)
pg: SELECT generate_series(1, 10) AS n, jsonb_build_object('a', 1), string_agg(name, ', ' ORDER BY name) FROM tags
pg: BEGIN READ ONLY; SELECT * FROM ledger WHERE account = $1; COMMIT
lite: SELECT id, name FROM users WHERE id = ?1 AND tenant = :tenant
lite: SELECT json_extract(payload, '$.user.id') FROM webhook_events WHERE source = ? ORDER BY rowid DESC
lite: SELECT [order id], `name` FROM [shop items] WHERE price > @min
lite: SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
lite: INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)
lite: UPDATE OR IGNORE counters SET n = n + 1 WHERE k = $key
lite: SELECT group_concat(tag, ','), ifnull(note, '-'), typeof(v) FROM notes WHERE k IN t_keys
lite: PRAGMA table_info(users)
my: SELECT `id`, `name` FROM `shop`.`items` WHERE `price` > 10 AND `name` LIKE "a%"
my: SELECT id, title FROM posts WHERE author_id = ? AND published = 1 ORDER BY created DESC LIMIT 20, 10
my: SELECT DATE_FORMAT(created_at, '%Y-%m'), COUNT(*) FROM orders GROUP BY 1 # per month
my: SELECT IFNULL(nick, name), CONCAT(first, ' ', last), 0x1F, b'101' FROM people WHERE id = @uid
my: SELECT * FROM users WHERE email = 'it''s' AND note <> "n/a" LIMIT 1
my: INSERT INTO stats (k, n) VALUES ('views', 1) ON DUPLICATE KEY UPDATE n = n + 1
my: SELECT SQL_NO_CACHE id FROM big FORCE INDEX (primary) WHERE id > 10
my: DESCRIBE users
my: SELECT 1 FROM DUAL
