# pg_dump and restore keep the orders, where they stand, and the audit --
# also an audit that received answers with invalid UTF-8 (stored escaped,
# so that pg_restore's checks of the encoding pass).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use SuStub;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $stub = SuStub->start(dir => $dir);

# the worker serves "shop"; the copy is restored into "restored"
# UTF8 whatever the locale: a byte that is not UTF-8 must matter
my $node = SuStub::node(initdb => [ '--encoding=UTF8', '--locale=C' ], conf => <<"EOC");
shopping_upload.database_name = 'shop'
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
# a failed call's retry waits until the test makes it due: the worker's own
# retry would otherwise spend a fault meant for a call by hand
shopping_upload.retry_base_delay = '1h'
EOC
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql('shop', 'CREATE EXTENSION shopping_upload');

sub sql { my ($db, $q) = @_; return $node->safe_psql($db, $q); }

my @ids;
for my $n (1 .. 5)
{
	my $json = SuStub::order_json(out_trade_no => sprintf('DUMP%08d', $n));
	push @ids, sql('shop', "SELECT shopping_upload.import_order('$json')");
}
sql('shop', "SELECT shopping_upload.import_order('{\"order_key\": {\"order_number_type\": 2, \"transaction_id\": \"T1\"}}')");
ok($node->poll_query_until('shop',
		"SELECT count(*) = 6 FROM shopping_upload.order_state WHERE state IN ('uploaded', 'rejected')"),
	'the orders are uploaded (or rejected) before the dump');
# answers whose errmsg holds bytes that are not UTF-8 (ff fe; ff in a
# 40001 answer): stored as \xFF escapes
is(sql('shop', 'SHOW server_encoding'), 'UTF8', 'the database is UTF8');
$stub->fault(kind => 'badutf8', count => 1);
is(sql('shop', "SELECT errcode || '|' || errmsg FROM shopping_upload.upload_shopping_info($ids[0])"),
	'-1|bad \xFF\xFE bytes', 'an errmsg with the raw bytes ff fe is stored as \xFF\xFE');
$stub->fault(kind => 'badutf8:40001', count => 2);
like(sql('shop', "SELECT errcode || '|' || errmsg FROM shopping_upload.upload_shopping_info($ids[1])"),
	qr/^40001\|invalid credential.* \\xFF rid: /, 'and a 40001 answer with the raw byte ff');
sql('shop', "UPDATE shopping_upload.order_state SET next_attempt_at = now() WHERE state = 'retrying'");
# written by hand: the worker's due hints are rebuilt from the states
sql('shop', "DELETE FROM shopping_upload.due WHERE kind = '*'");
sql('shop', "SELECT shopping_upload.enqueue($ids[0])");
ok($node->poll_query_until('shop',
		"SELECT count(*) = 6 FROM shopping_upload.order_state WHERE state IN ('uploaded', 'rejected')"),
	'the worker uploads them again');
my $escaped_sql = "SELECT count(*) || ' ' || md5(string_agg(audit_id || ':' || errmsg, ',' ORDER BY audit_id))
	FROM shopping_upload.audit WHERE strpos(errmsg, '\\xFF') > 0";
my $escaped = sql('shop', $escaped_sql);
like($escaped, qr/^3 /, 'three audit rows hold an escaped errmsg');

my $before = sql('shop', "SELECT string_agg(order_id || ':' || state || ':' || version, ',' ORDER BY order_id)
	FROM shopping_upload.order_state");
my $audit = sql('shop', 'SELECT count(*) FROM shopping_upload.audit');

my $dump = "$dir/shop.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('shop'), '-f', $dump ], 'pg_dump');

sql('postgres', 'CREATE DATABASE restored');
{
	# orders restored are orders already uploaded: do not queue them again
	local $ENV{PGOPTIONS} = '-c shopping_upload.auto_upload=off';
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ 'pg_restore', '-d', $node->connstr('restored'), $dump ],
		'>', \$out, '2>', \$err);
	ok($ok, 'pg_restore');
	is($err, '', 'pg_restore reports no error (no invalid byte sequence)');
}

is(sql('restored', 'SELECT count(*) FROM shopping_upload.orders'), '6', 'the orders are restored');
is(sql('restored', 'SELECT count(*) FROM shopping_upload.items'), '15', 'with their items');
is(sql('restored', "SELECT string_agg(order_id || ':' || state || ':' || version, ',' ORDER BY order_id)
	FROM shopping_upload.order_state"), $before, 'and where each stands');
is(sql('restored', 'SELECT count(*) FROM shopping_upload.audit'), $audit, 'and the audit');
is(sql('restored', $escaped_sql), $escaped, 'with the escaped errmsgs intact');
is(sql('restored', "SELECT (shopping_upload.build_payload($ids[0]) - 'upload_time')
	= (SELECT shopping_upload.build_payload($ids[0]) - 'upload_time')"), 't', 'payloads build again');
my $next = sql('restored', "SELECT shopping_upload.import_order('{\"order_key\": {\"order_number_type\": 2, \"transaction_id\": \"T2\"}}')");
ok($next > $ids[-1], 'a new order gets a new id: the identity counter is restored');
my $aid = sql('restored', "SELECT (shopping_upload.upload_shopping_info($ids[0])).audit_id");
ok($aid > $audit, 'so does the audit\'s');

# --- rows inserted into a state table by something else than the queue (a
# restore's COPY while a worker serves the database, an INSERT by hand) have
# no due hints: their trigger has the worker rebuild them, and the order goes
sql('postgres', "ALTER SYSTEM SET shopping_upload.databases = 'shop, restored'");
$node->reload;
ok($node->poll_query_until('restored', "SELECT count(*) FROM shopping_upload.due WHERE kind = '*'", '1'),
	'a worker serves the restored database, its due hints complete');
my $hand = sql('restored', 'SET shopping_upload.auto_upload = off; SELECT shopping_upload.import_order(\''
	  . SuStub::order_json(out_trade_no => 'DUMPHAND0001') . '\')');
is(sql('restored', "SELECT count(*) FROM shopping_upload.order_state WHERE order_id = $hand"), '0',
	'an order stored with auto_upload off has no state');
sql('restored', "INSERT INTO shopping_upload.order_state (order_id) VALUES ($hand)");
ok($node->poll_query_until('restored',
		"SELECT state FROM shopping_upload.order_state WHERE order_id = $hand", 'uploaded'),
	'a state row inserted by hand, as a restore\'s COPY inserts it, is uploaded');

done_testing();
