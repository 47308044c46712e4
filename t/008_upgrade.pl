# ALTER EXTENSION shopping_upload UPDATE from 1.0 with data in every table:
# the schema is the one CREATE EXTENSION makes (dump, ACLs, config tables),
# the data is untouched, and the worker -- which waits while the database
# has 1.0 and the library is 1.2 -- uploads once the versions agree.  The
# update goes through every script (1.0--1.1, 1.1--1.2), and the result is
# compared with a fresh CREATE EXTENSION of 1.2.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(usleep);
use SuStub;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $stub = SuStub->start(dir => $dir);

# the worker serves "shop", which is made at 1.0 and updated; "fresh" gets
# 1.1 by CREATE EXTENSION (SuStub::node also creates it in "postgres")
my $node = SuStub::node(conf => <<"EOC");
shopping_upload.database_name = 'shop'
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
shopping_upload.retry_base_delay = '50ms'
shopping_upload.retry_max_delay = '200ms'
shopping_upload.timeout = '5s'
EOC

sub sql { my ($db, $q) = @_; return $node->safe_psql($db, $q); }

my $waiting_re = qr/waiting for ALTER EXTENSION shopping_upload UPDATE/;

# polls the server log from $offset for $re, for at most $secs seconds
sub log_appears
{
	my ($re, $offset, $secs) = @_;
	my $end = Time::HiRes::time() + $secs;
	while (1)
	{
		return 1
		  if PostgreSQL::Test::Utils::slurp_file($node->logfile, $offset) =~ $re;
		return 0 if Time::HiRes::time() > $end;
		usleep(100_000);
	}
}

sub uploads { return scalar @{ $stub->requests('/user-order/orders') }; }

# --- 1.0, with data in every table
sql('postgres', 'CREATE DATABASE shop');
sql('shop', "CREATE EXTENSION shopping_upload VERSION '1.0'");
is(sql('shop', "SELECT extversion FROM pg_extension WHERE extname = 'shopping_upload'"),
	'1.0', 'version 1.0 is installed in shop');

ok(log_appears($waiting_re, 0, 60),
	'the 1.1 worker says it waits for ALTER EXTENSION ... UPDATE');

# plain INSERTs: import_order() of the 1.1 library names the 1.1 indexes
# (ON CONFLICT on the md5 digests), which 1.0 does not have
sql('shop', q{
	INSERT INTO shopping_upload.orders (order_number_type, mchid, out_trade_no, openid, logistics_type)
	VALUES (1, '1230000109', 'UPG_000001', 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1),
		   (1, '1230000109', 'UPG_000002', 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1);
	INSERT INTO shopping_upload.orders (order_number_type, transaction_id, openid)
	VALUES (2, '4200000003', 'o-no-order-list');
	INSERT INTO shopping_upload.sub_orders
	SELECT o, 0, 'UPG_00000' || o || '-1', 'MINI_PROGRAM', NULL, 'wxtestappid',
		   '/pages/order?no=UPG_00000' || o
	  FROM generate_series(1, 2) o;
	INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no, merchant_item_id,
		name, description, unit_price, quantity, image_url, link_type, link_appid, link_path)
	SELECT o, 0, i, 'sku-' || i, '商品 ' || i, 'desc ' || i, 100 * (i + 1), 1,
		   ARRAY['https://img.example.com/' || i || '.png'], 'MINI_PROGRAM', 'wxtestappid',
		   '/pages/item?sku=' || i
	  FROM generate_series(1, 2) o, generate_series(0, 2) i;
	INSERT INTO shopping_upload.accounts VALUES
		('wxsecond', 'secret2', NULL, NULL),
		('wxthird', NULL, 'handed-in-token', '2030-01-01 00:00:00+00');
});
# the 1.1 library's SQL functions refuse to run on the 1.0 tables, with the
# way out in the hint
my ($rc, $out, $err) = $node->psql('shop', 'SELECT * FROM shopping_upload.upload_shopping_info(1)');
isnt($rc, 0, 'under 1.0, upload_shopping_info() of the 1.1 library fails');
like($err, qr/shopping_upload version 1\.0 is installed in this database, but its library is version 1\.2.*\n.*HINT:\s+Run ALTER EXTENSION shopping_upload UPDATE/s,
	'and says which versions differ and what to run');
($rc, $out, $err) = $node->psql('shop', q{SELECT shopping_upload.import_order('{}')});
like($err, qr/ALTER EXTENSION shopping_upload UPDATE/, 'so does import_order()');

# order 1 uploaded and order 3 refused, as 1.0 recorded them (audit rows of
# both kinds); order 2 stays pending for the worker
sql('shop', q{
	UPDATE shopping_upload.order_state SET state = 'uploaded', attempts = 1,
		uploaded_version = version, last_errcode = 0, last_errmsg = 'ok',
		next_attempt_at = NULL WHERE order_id = 1;
	UPDATE shopping_upload.order_state SET state = 'rejected', attempts = 1,
		last_errcode = 268485191, last_errmsg = 'order_list is missing',
		next_attempt_at = NULL WHERE order_id = 3;
	INSERT INTO shopping_upload.audit (order_id, attempt, via, appid, upload_time,
		request, sent, http_status, errcode, errmsg, duration_ms)
	VALUES (1, 1, 'sql', 'wxtestappid', '2026-11-27T10:00:00.000+08:00',
			'{"order_key": {"out_trade_no": "UPG_000001"}}', true, 200, 0, 'ok', 1.5),
		   (3, 1, 'sql', 'wxtestappid', '2026-11-27T10:00:00.000+08:00',
			'{"order_key": {"transaction_id": "4200000003"}}', false, NULL,
			268485191, 'order_list is missing', 0.1);
});
is(sql('shop', q{SELECT string_agg(order_id || ' ' || state, ',' ORDER BY order_id) FROM shopping_upload.order_state}),
	'1 uploaded,2 pending,3 rejected', 'one order uploaded, one pending, one rejected');

# every table of the extension holds rows (a table added later must get some here)
my %kind = map { split /\|/ } split /\n/, sql('shop', q{
	SELECT c.oid::regclass::text || '|' || c.relkind::text FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
	 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'shopping_upload')
	   AND d.deptype = 'e' AND c.relkind IN ('r', 'p', 'S')});
my @tables = sort keys %kind;
is( join(' ', @tables),
	join(' ', map { "shopping_upload.$_" }
		  qw(accounts audit audit_audit_id_seq items order_state orders orders_order_id_seq sub_orders)),
	'the tables and sequences of 1.0');
for my $t (@tables)
{
	if ($kind{$t} eq 'S')
	{
		is(sql('shop', "SELECT is_called FROM $t"), 't', "$t has been used");
	}
	else
	{
		is(sql('shop', "SELECT count(*) > 0 FROM $t"), 't', "$t holds rows");
	}
}

# --- nothing is uploaded while the versions differ
sleep 2;    # the queue woke the worker: give it time to misbehave
is(uploads(), 0, 'under 1.0, nothing reached the stand-in');
is(sql('shop', "SELECT state || ' ' || attempts FROM shopping_upload.order_state WHERE order_id = 2"),
	'pending 0', 'the pending order was not claimed');
is(sql('shop', "SELECT count(*) FROM shopping_upload.audit WHERE via <> 'sql'"), '0',
	'the worker audited nothing');

# --- the update, with the data read before and after in one snapshot
# (REPEATABLE READ: a difference can only come from the update itself); a
# sequence by its counter (last_value, is_called)
# (the columns of 1.0 only, in both: 1.1 adds columns, checked below)
my %cols_10 = map {
	my $t = $_;
	($t => join(', ', map { "t.$_" } split /\n/, sql('shop', "
		SELECT quote_ident(attname) FROM pg_attribute
		 WHERE attrelid = '$t'::regclass AND attnum > 0 AND NOT attisdropped
		 ORDER BY attnum")))
} grep { $kind{$_} ne 'S' } @tables;
my $snap = 'SELECT json_build_object('
  . join(', ',
	map {
		my $row = $kind{$_} eq 'S' ? "t.last_value || ' ' || t.is_called" : "ROW($cols_10{$_})::text";
		"'$_', (SELECT coalesce(json_agg($row ORDER BY $row), '[]') FROM $_ t)"
	} @tables)
  . ')';
my $update_at = -s $node->logfile;
my ($before, $after) = split /\n/, sql('shop', "
	BEGIN ISOLATION LEVEL REPEATABLE READ;
	$snap;
	ALTER EXTENSION shopping_upload UPDATE;
	$snap;
	COMMIT;");
is(sql('shop', "SELECT extversion FROM pg_extension WHERE extname = 'shopping_upload'"),
	'1.2', 'ALTER EXTENSION shopping_upload UPDATE brings shop to 1.2 (through 1.1)');

my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
my $while_10 = substr($log, 0, $update_at);
my $n_waiting = () = $while_10 =~ /$waiting_re/g;
is($n_waiting, 1, 'the worker said it waits exactly once while 1.0 was installed');

$before = decode_json($before);
$after = decode_json($after);
for my $t (@tables)
{
	is(scalar @{ $after->{$t} }, scalar @{ $before->{$t} }, "$t: as many rows after the update");
	is_deeply($after->{$t}, $before->{$t}, "$t: the same rows after the update");
}

# the columns 1.1 adds hold their defaults in the rows written before
is(sql('shop', "SELECT string_agg(DISTINCT kind, ',') || ' ' || count(*) FILTER (WHERE verify_result IS NOT NULL)
	FROM shopping_upload.audit"), 'order 0', 'audit rows of 1.0 are of kind order, without a verify_result');
# (order 2, pending during the update, is the worker's as soon as it is
# done: its upload may plan a verify before this reads it)
is(sql('shop', "SELECT count(*) FILTER (WHERE verify_attempts <> 0 OR verify_due_at IS NOT NULL
	OR verify_result IS NOT NULL OR verified_at IS NOT NULL) FROM shopping_upload.order_state
	WHERE order_id <> 2"), '0',
	'order states of 1.0 have no verify planned nor made');

# --- the schema is the one a fresh CREATE EXTENSION makes
sql('postgres', 'CREATE DATABASE fresh');
sql('fresh', 'CREATE EXTENSION shopping_upload');

# pg_dump leaves out an extension's member objects (it dumps CREATE
# EXTENSION instead), and --schema-only -n shopping_upload dumps the schema
# alone.  In --binary-upgrade mode pg_dump dumps every member (as pg_upgrade
# needs them): each table, index, function, view, trigger, comment, owner,
# "ALTER EXTENSION ... ADD", and the ACLs with what pg_init_privs records.
# The two databases hold nothing else, so the whole databases are dumped.
# (ALTER EXTENSION ... DROP of every member in scratch copies would make
# plain pg_dump show them too, but it rewrites what is compared: the
# membership and pg_init_privs are gone, and the copies are made by the test.)
# Left out are only what names the physical objects: OIDs and relfilenodes
# to preserve, attribute versions, relfrozenxid, the \restrict key, and the
# OIDs of the config tables (compared by name below).  A difference is
# shown as a diff (is() of the diff against nothing).
sub schema_dump
{
	my ($db) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'pg_dump', '--schema-only', '--binary-upgrade', '-d', $node->connstr($db) ],
		'>', \$out, '2>', \$err)
	  or die "pg_dump $db: $err";
	my @keep;
	for (split /\n/, $out)
	{
		next if /^\\(?:un)?restrict /;
		next if /binary_upgrade_set_next_\w+\(/;
		next if /^SET relfrozenxid = '\d+', relminmxid = '\d+'$/;
		next if /^WHERE oid = '\d+';$/;
		# the counters of the sequences marked by pg_extension_config_dump
		# are data (compared above), not schema
		next if /^SELECT pg_catalog\.setval\('shopping_upload\./;
		# a column added by ALTER TABLE with a default keeps that default as
		# the value of the rows written before (storage, not schema); the
		# comment line before it goes too
		next if /^SELECT pg_catalog\.binary_upgrade_set_missing_value\(/;
		next if /^-- set missing value\.$/;
		s/^(SELECT pg_catalog\.binary_upgrade_create_empty_extension\('shopping_upload', .*?, '[^']*', )'\{[\d,]*\}'/$1'{config tables}'/;
		push @keep, $_;
	}
	# runs of blank lines (left where lines went) count as one
	(my $kept = join("\n", @keep) . "\n") =~ s/\n{3,}/\n\n/g;
	return $kept;
}

sub diff_text
{
	my ($updated, $fresh) = @_;
	$_ .= "\n" for grep { !/\n\z/ } $updated, $fresh;
	PostgreSQL::Test::Utils::append_to_file("$dir/updated.txt", $updated);
	PostgreSQL::Test::Utils::append_to_file("$dir/fresh.txt", $fresh);
	my $d = '';
	IPC::Run::run([ 'diff', '-u', '--label', 'updated', '--label', 'fresh',
			"$dir/updated.txt", "$dir/fresh.txt" ], '>', \$d);
	unlink "$dir/updated.txt", "$dir/fresh.txt";
	return $d;
}

my $updated = schema_dump('shop');
my $fresh = schema_dump('fresh');
like($updated, qr/ALTER EXTENSION shopping_upload ADD TABLE shopping_upload\.orders;/,
	'the dump holds the members (binary-upgrade mode)');
is(diff_text($updated, $fresh), '',
	'pg_dump --schema-only --binary-upgrade: updated and fresh are the same');

# ACLs as grants (the order of the items of an ACL is not a difference):
# the schema's, every member's (a column's too), and pg_init_privs
my $acl_sql = q{
	WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'shopping_upload'),
	members AS (
		SELECT d.classid, d.objid FROM pg_depend d, ext
		 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid
		   AND d.deptype = 'e'),
	acls AS (
		SELECT 'schema ' || nspname AS obj, coalesce(nspacl, acldefault('n', nspowner)) AS acl
		  FROM pg_namespace WHERE nspname = 'shopping_upload'
		UNION ALL
		SELECT pg_describe_object(m.classid, m.objid, 0),
			   coalesce(c.relacl, acldefault((CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))
		  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
		UNION ALL
		SELECT pg_describe_object('pg_class'::regclass, a.attrelid, a.attnum), a.attacl
		  FROM members m JOIN pg_attribute a ON m.classid = 'pg_class'::regclass AND a.attrelid = m.objid
		 WHERE a.attacl IS NOT NULL
		UNION ALL
		SELECT pg_describe_object(m.classid, m.objid, 0), coalesce(p.proacl, acldefault('f', p.proowner))
		  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
		UNION ALL
		SELECT pg_describe_object(m.classid, m.objid, 0), coalesce(t.typacl, acldefault('T', t.typowner))
		  FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
		UNION ALL
		SELECT 'init ' || i.privtype::text || ' ' || pg_describe_object(i.classoid, i.objoid, i.objsubid), i.initprivs
		  FROM pg_init_privs i JOIN members m ON m.classid = i.classoid AND m.objid = i.objoid)
	SELECT string_agg(line, E'\n' ORDER BY line COLLATE "C") FROM (
		SELECT obj || ': ' || coalesce(
				   (SELECT string_agg(g, ', ' ORDER BY g COLLATE "C")
					  FROM (SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
								   || ' ' || a.privilege_type
								   || CASE WHEN a.is_grantable THEN ' with grant option' ELSE '' END
								   || ' by ' || a.grantor::regrole::text AS g
							  FROM aclexplode(acl) a) x), 'none') AS line
		  FROM acls) s};
my $acl_updated = sql('shop', $acl_sql);
my $acl_fresh = sql('fresh', $acl_sql);
like($acl_updated, qr/^function shopping_upload\.audit_rows_deleted\(\): PUBLIC EXECUTE by /m,
	'the ACLs are read (audit_rows_deleted() is PUBLIC\'s)');
is(diff_text($acl_updated, $acl_fresh), '',
	'ACLs and pg_init_privs: updated and fresh are the same');

my $config_sql = q{
	SELECT extversion || ' ' || extrelocatable || ' ' || extnamespace::regnamespace || E'\n'
		   || (SELECT string_agg(c::regclass::text || ' [' || w || ']', E'\n' ORDER BY n)
				 FROM unnest(extconfig, extcondition) WITH ORDINALITY u(c, w, n))
	  FROM pg_extension WHERE extname = 'shopping_upload'};
my $config_updated = sql('shop', $config_sql);
like($config_updated, qr/^shopping_upload\.orders \[\]$/m, 'the config tables are read');
is($config_updated, sql('fresh', $config_sql),
	'extconfig and extcondition (pg_extension_config_dump): updated and fresh are the same');

my $members_sql = q{
	SELECT string_agg(pg_describe_object(classid, objid, objsubid), E'\n'
			ORDER BY pg_describe_object(classid, objid, objsubid) COLLATE "C")
	  FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'shopping_upload')};
is(sql('shop', $members_sql), sql('fresh', $members_sql),
	'the members: updated and fresh are the same');

# --- the worker uploads once the versions agree
ok(SuStub::poll_until($node, 'shop',
		"SELECT state FROM shopping_upload.order_state WHERE order_id = 2", 'uploaded', 60),
	'the order pending during the update is uploaded by the worker');
is(sql('shop', "SELECT via || ' ' || errcode FROM shopping_upload.audit WHERE order_id = 2"),
	'worker 0', 'its audit row: the worker, errcode 0');

my $json = SuStub::order_json(out_trade_no => 'UPG_000004');
my $new = sql('shop', "SELECT shopping_upload.import_order('$json')");
ok(SuStub::poll_until($node, 'shop',
		"SELECT state FROM shopping_upload.order_state WHERE order_id = $new", 'uploaded', 60),
	'an order written after the update is uploaded by the worker');
is(sql('shop', "SELECT via || ' ' || errcode FROM shopping_upload.audit WHERE order_id = $new"),
	'worker 0', 'its audit row: the worker, errcode 0');
is(sql('shop', "SELECT (request IS NULL)::text || ' ' || (request_sha256 IS NOT NULL)::text || ' '
		|| (version IS NOT NULL)::text || ' ' || (queued_at IS NOT NULL)::text
		FROM shopping_upload.audit WHERE order_id = $new"),
	'true true true true', 'it keeps the digest, version and queued_at, not the body (audit_request = failed)');
is(sql('shop', "SELECT string_agg(order_id || ' ' || (request IS NOT NULL)::text || ' '
		|| coalesce(version::text, '-') || ' ' || coalesce(queued_at::text, '-') || ' '
		|| coalesce(encode(request_sha256, 'hex'), '-'), ',' ORDER BY order_id)
		FROM shopping_upload.audit WHERE order_id IN (1, 3)"),
	'1 true - - -,3 true - - -', 'the audit rows written before the update keep their body, and NULL in the new columns');
is(uploads(), 2, 'two uploads reached the stand-in, both by the worker after the update');
is(sql('shop', "SELECT string_agg(order_id || ' ' || state, ',' ORDER BY order_id) FROM shopping_upload.order_state"),
	"1 uploaded,2 uploaded,3 rejected,$new uploaded",
	'the orders uploaded and refused under 1.0 are left as they were');

$log = PostgreSQL::Test::Utils::slurp_file($node->logfile, $update_at);
unlike($log, $waiting_re, 'no more waiting after the update');

$node->stop;
done_testing();
