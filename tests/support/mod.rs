pub mod clustered_graph;
