# One answer that cannot be recorded fails alone: the worker records the
# others of its batch, and that one without what is in the way.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SuStub;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $stub = SuStub->start(dir => $dir);
my $node = SuStub::node(conf => <<"EOC");
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
shopping_upload.claim_interval = '200ms'
# the accepted rows keep their body here: the poison below is found in it,
# and the fallback writes the row without it
shopping_upload.audit_request = 'all'
EOC

sub sql { return $node->safe_psql('postgres', $_[0]); }

# an audit row for one chosen order cannot be written: a trigger refuses it,
# as a row too large or a broken constraint would
sql(q{CREATE TABLE poison (out_trade_no text);
	CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF EXISTS (SELECT FROM public.poison p
		           WHERE p.out_trade_no = NEW.request->'order_key'->>'out_trade_no') THEN
			RAISE EXCEPTION 'this audit row cannot be written';
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER refuse_audit BEFORE INSERT ON shopping_upload.audit
		FOR EACH ROW EXECUTE FUNCTION refuse_audit();});

# five orders committed together are claimed, sent and recorded together
sql("INSERT INTO poison VALUES ('ISO000000003')");
my @ids;
my $json = sub { SuStub::order_json(out_trade_no => sprintf('ISO%09d', $_[0])) };
my $list = sql("SELECT string_agg(shopping_upload.import_order(j::jsonb)::text, ',') FROM (VALUES "
	  . join(', ', map { "('" . $json->($_) . "')" } 1 .. 5)
	  . ") AS v(j)");
@ids = split /,/, $list;
is(scalar @ids, 5, 'five orders queued in one transaction');
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM shopping_upload.order_state WHERE state = 'uploaded'", '5'),
	'all five are uploaded and recorded, the poisoned one too');
is(sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id IN ($list) AND errcode = 0
		AND request IS NOT NULL AND order_id <> $ids[2]"),
	'4', 'the four others have their audit rows, as usual');
is(sql("SELECT count(*) || ' ' || bool_and(request IS NULL)::int || ' ' || bool_and(request_sha256 IS NOT NULL)::int
		FROM shopping_upload.audit WHERE order_id = $ids[2] AND errcode = 0"),
	'1 1 1', 'the poisoned one has its audit row without the request that was in the way, but with its digest');
is(sql("SELECT uploaded_version = version FROM shopping_upload.order_state WHERE order_id = $ids[2]"),
	't', 'the poisoned one is recorded as uploaded (its answer was not dropped)');
my $log = slurp_file($node->logfile);
like($log, qr/could not record the answer for order $ids[2]/, 'and the worker said why');
is(scalar(grep { ($_->{errcode} // -2) == 0 } @{ $stub->requests('/user-order/orders') }), 5,
	'each order was sent once: nothing was sent again for the failure');

done_testing();
